// Package logjson is the server's JSON log formatter: the same lines as
// logrus's JSONFormatter (same keys, order and encoding), written straight
// into the entry's buffer instead of through a copied map and reflection.
//
// Every request writes an access line, so the formatter is on the hot path
// of every endpoint; logrus's JSONFormatter spent about 12% of the server's
// CPU on the JWKS document (docs/performance.md). Values of the common
// kinds (strings without characters JSON escapes, integers, finite floats
// in plain notation, booleans, nil, errors) are written directly; anything
// else goes through encoding/json exactly as logrus would encode it, so the
// output never differs (TestMatchesLogrus compares byte for byte).
package logjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"
)

// Formatter implements logrus.Formatter.
type Formatter struct{}

// The keys logrus itself adds; a field of the same name is renamed
// "fields.<name>", as logrus's JSONFormatter does.
const (
	keyTime  = "time"
	keyMsg   = "msg"
	keyLevel = "level"
)

// Format writes e as one JSON object and a newline.
func (Formatter) Format(e *logrus.Entry) ([]byte, error) {
	b := e.Buffer
	if b == nil {
		b = &bytes.Buffer{}
	}
	var stack [16]field
	fields := stack[:0]
	for k, v := range e.Data {
		switch k {
		case keyTime, keyMsg, keyLevel:
			k = "fields." + k
		}
		fields = append(fields, field{k, v})
	}
	fields = append(fields,
		field{keyTime, e.Time.Format(time.RFC3339)},
		field{keyMsg, e.Message},
		field{keyLevel, e.Level.String()},
	)
	slices.SortFunc(fields, func(a, b field) int {
		switch {
		case a.key < b.key:
			return -1
		case a.key > b.key:
			return 1
		}
		return 0
	})
	b.WriteByte('{')
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		writeString(b, f.key)
		b.WriteByte(':')
		if err := writeValue(b, f.value); err != nil {
			return nil, fmt.Errorf("failed to marshal fields to JSON, %w", err)
		}
	}
	b.WriteString("}\n")
	return b.Bytes(), nil
}

type field struct {
	key   string
	value any
}

func writeValue(b *bytes.Buffer, v any) error {
	var scratch [32]byte
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case string:
		writeString(b, x)
	case error:
		// logrus logs an error as its message.
		writeString(b, x.Error())
	case bool:
		b.Write(strconv.AppendBool(scratch[:0], x))
	case int:
		b.Write(strconv.AppendInt(scratch[:0], int64(x), 10))
	case int64:
		b.Write(strconv.AppendInt(scratch[:0], x, 10))
	case int32:
		b.Write(strconv.AppendInt(scratch[:0], int64(x), 10))
	case uint:
		b.Write(strconv.AppendUint(scratch[:0], uint64(x), 10))
	case uint64:
		b.Write(strconv.AppendUint(scratch[:0], x, 10))
	case float64:
		// encoding/json writes plain notation in this range and exponent
		// notation outside it; leave the latter (and NaN, ±Inf, which it
		// refuses) to encoding/json.
		if a := math.Abs(x); x == 0 || (a >= 1e-6 && a < 1e21) {
			b.Write(strconv.AppendFloat(scratch[:0], x, 'f', -1, 64))
			return nil
		}
		return marshal(b, x)
	default:
		return marshal(b, x)
	}
	return nil
}

func marshal(b *bytes.Buffer, v any) error {
	out, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b.Write(out)
	return nil
}

// writeString writes s quoted. A string of printable ASCII without the
// characters encoding/json escapes (quote, backslash and, with HTML
// escaping on as in logrus, <, > and &) is written as is; any other string
// is left to encoding/json.
func writeString(b *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			out, _ := json.Marshal(s) // a string always encodes
			b.Write(out)
			return
		}
	}
	b.WriteByte('"')
	b.WriteString(s)
	b.WriteByte('"')
}
