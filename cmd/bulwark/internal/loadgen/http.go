package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// statusError is an operation that got an HTTP status it did not expect.
type statusError struct{ code int }

func (e *statusError) Error() string { return "HTTP " + strconv.Itoa(e.code) }

// errUnexpected is a 2xx answer whose body lacked what the scenario needs.
var errUnexpected = errors.New("unexpected response body")

// errorKey names the failure for the errors-by-status table.
func errorKey(err error) string {
	var se *statusError
	switch {
	case errors.As(err, &se):
		return strconv.Itoa(se.code)
	case errors.Is(err, errUnexpected):
		return "unexpected"
	}
	return "transport"
}

// call sends one request and, for the expected status, decodes a JSON
// body into out (when out is non-nil). The body is always drained so the
// connection is reused.
func call(c *http.Client, req *http.Request, want int, out any) error {
	res, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	if res.StatusCode != want {
		_, _ = io.Copy(io.Discard, res.Body)
		return &statusError{res.StatusCode}
	}
	if out == nil {
		if _, err := io.Copy(io.Discard, res.Body); err != nil {
			return fmt.Errorf("%s %s: read body: %w", req.Method, req.URL.Path, err)
		}
		return nil
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		return fmt.Errorf("%w: %s %s: %v", errUnexpected, req.Method, req.URL.Path, err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	return nil
}

// formRequest builds a form POST with optional Basic or Bearer credentials.
func formRequest(ctx context.Context, u string, form url.Values, basicUser, basicPass, bearer string) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		req.SetBasicAuth(basicUser, basicPass)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return req
}

// adminJSON calls the admin API with the admin key.
func (e *env) adminJSON(ctx context.Context, method, path string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.opts.AdminURL+"/admin/v1"+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+e.opts.AdminKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if err := call(e.api, req, want, out); err != nil {
		return fmt.Errorf("admin %s %s: %w", method, path, err)
	}
	return nil
}

// serverCounters are the /metrics values the report needs.
type serverCounters struct {
	cpu         float64
	acquires    float64
	hasAcquires bool
}

// scrape reads process_cpu_seconds_total (and the pool's acquire counter)
// from the admin listener's Prometheus text exposition.
func (e *env) scrape(ctx context.Context) (serverCounters, error) {
	var c serverCounters
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.opts.AdminURL+"/metrics", nil)
	if err != nil {
		return c, err
	}
	res, err := e.api.Do(req)
	if err != nil {
		return c, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return c, fmt.Errorf("GET /metrics: %w", &statusError{res.StatusCode})
	}
	hasCPU := false
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		switch name {
		case "process_cpu_seconds_total":
			if c.cpu, err = strconv.ParseFloat(value, 64); err == nil {
				hasCPU = true
			}
		case "bulwark_db_pool_acquires_total":
			if c.acquires, err = strconv.ParseFloat(value, 64); err == nil {
				c.hasAcquires = true
			}
		}
	}
	if err := sc.Err(); err != nil {
		return c, fmt.Errorf("read /metrics: %w", err)
	}
	if !hasCPU {
		return c, errors.New("/metrics has no process_cpu_seconds_total (process collector not registered?)")
	}
	return c, nil
}
