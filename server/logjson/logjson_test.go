package logjson_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/server/logjson"
	"github.com/sirupsen/logrus"
)

type point struct {
	X, Y int
}

// TestMatchesLogrus: for every kind of value the server logs (and some it
// does not), the formatter's line is byte for byte logrus's JSONFormatter's.
func TestMatchesLogrus(t *testing.T) {
	at := time.Date(2026, 12, 3, 14, 5, 6, 789, time.FixedZone("CET", 3600))
	cases := map[string]struct {
		msg    string
		level  logrus.Level
		fields logrus.Fields
	}{
		"access line": {"request", logrus.InfoLevel, logrus.Fields{
			"listener": "public", "request_id": "0123456789abcdef01234567", "method": "GET",
			"route": "/.well-known/jwks.json", "protection": "public-document", "status": 200,
			"latency_ms": 0.123, "remote_ip": "127.0.0.1", "client_id": "",
		}},
		"no fields":                {"started", logrus.WarnLevel, nil},
		"clashing keys renamed":    {"m", logrus.InfoLevel, logrus.Fields{"time": "t", "msg": "x", "level": 3, "fields.z": 1}},
		"escapes in strings":       {"quote \" backslash \\ <html> & amp", logrus.ErrorLevel, logrus.Fields{"ctl": "a\x00b\nc\td\re\bf\fg\x1f", "uni": "grüße — 日本", "sep": "\u2028\u2029", "bad": "\xff\xfe ok"}},
		"numbers":                  {"n", logrus.DebugLevel, logrus.Fields{"i": -42, "i64": int64(math.MaxInt64), "i32": int32(-7), "u": uint(7), "u64": uint64(math.MaxUint64), "f": 1.5, "zero": 0.0, "neg": -0.000002, "tiny": 1e-9, "huge": 1e22, "whole": 3.0, "f32": float32(0.1), "u8": uint8(9)}},
		"bools nil errors":         {"b", logrus.InfoLevel, logrus.Fields{"t": true, "f": false, "nil": nil, "err": errors.New(`boom "x" <y>`)}},
		"other kinds via encoding": {"o", logrus.InfoLevel, logrus.Fields{"time": at, "d": 1500 * time.Millisecond, "list": []string{"a", "<b>"}, "map": map[string]int{"z": 1, "a": 2}, "struct": point{1, 2}, "ptr": &point{3, 4}, "bytes": []byte("hi")}},
		"many fields":              {"m", logrus.InfoLevel, manyFields(40)},
		"empty message and key":    {"", logrus.InfoLevel, logrus.Fields{"": "empty key"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			e := &logrus.Entry{Logger: logrus.New(), Data: tc.fields, Time: at, Level: tc.level, Message: tc.msg}
			if e.Data == nil {
				e.Data = logrus.Fields{}
			}
			want, err := (&logrus.JSONFormatter{}).Format(e)
			if err != nil {
				t.Fatal(err)
			}
			got, err := logjson.Formatter{}.Format(e)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Fatalf("line differs from logrus's:\n got %s\nwant %s", got, want)
			}
		})
	}
}

func manyFields(n int) logrus.Fields {
	f := logrus.Fields{}
	for i := range n {
		f[string(rune('a'+i%26))+string(rune('A'+i/26))] = i
	}
	return f
}

// TestUnencodableValueIsAnError: like logrus, a value JSON cannot hold is
// reported, not written half-way.
func TestUnencodableValueIsAnError(t *testing.T) {
	for name, v := range map[string]any{"NaN": math.NaN(), "Inf": math.Inf(1), "chan": make(chan int)} {
		t.Run(name, func(t *testing.T) {
			e := &logrus.Entry{Logger: logrus.New(), Data: logrus.Fields{"v": v}, Time: time.Now(), Level: logrus.InfoLevel}
			if _, err := (logjson.Formatter{}).Format(e); err == nil {
				t.Fatal("no error for an unencodable value")
			}
		})
	}
}

func BenchmarkFormat(b *testing.B) {
	fields := logrus.Fields{
		"listener": "public", "request_id": "0123456789abcdef01234567", "method": "GET",
		"route": "/.well-known/jwks.json", "protection": "public-document", "status": 200,
		"latency_ms": 0.123, "remote_ip": "127.0.0.1", "client_id": "",
	}
	for name, f := range map[string]logrus.Formatter{"logrus": &logrus.JSONFormatter{}, "logjson": logjson.Formatter{}} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			e := &logrus.Entry{Logger: logrus.New(), Data: fields, Time: time.Now(), Level: logrus.InfoLevel, Message: "request"}
			for b.Loop() {
				if _, err := f.Format(e); err != nil {
					b.Fatal(err)
				}
				if e.Buffer != nil {
					e.Buffer.Reset()
				}
			}
		})
	}
}
