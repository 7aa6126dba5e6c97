package protect

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// TestSlowClientsDoNotStarveServer opens 50 loopback connections that send
// one header byte per second and checks that a normal request is served
// while they hang, and that ReadHeaderTimeout from ServerTimeouts cuts them
// off. It takes about 6 seconds.
func TestSlowClientsDoNotStarveServer(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok"))
	}))
	readHeader, read, write, idle := ServerTimeouts()
	srv.Config.ReadHeaderTimeout, srv.Config.ReadTimeout = readHeader, read
	srv.Config.WriteTimeout, srv.Config.IdleTimeout = write, idle
	srv.Config.MaxHeaderBytes = MaxHeaderBytes
	srv.Start()
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	const conns = 50
	payload := []byte("GET / HTTP/1.1\r\nHost: x\r\n")
	closedAfter := make([]time.Duration, conns)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < conns; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func(i int, c net.Conn) {
			defer wg.Done()
			defer c.Close()
			buf := make([]byte, 1)
			// One byte per second for up to 5 s, then wait up to 3 s more
			// for the server to hang up. A read that returns EOF means the
			// server closed the connection.
			for j := 0; time.Since(start) < 8*time.Second; j++ {
				if time.Since(start) < 5*time.Second && j < len(payload) {
					if _, err := c.Write(payload[j : j+1]); err != nil {
						closedAfter[i] = time.Since(start)
						return
					}
				}
				_ = c.SetReadDeadline(time.Now().Add(time.Second))
				_, err := c.Read(buf)
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				// EOF, a reset, or an unexpected response byte: the
				// server is done with this connection.
				closedAfter[i] = time.Since(start)
				return
			}
		}(i, c)
	}

	// While all 50 hang, a normal client is served.
	time.Sleep(1500 * time.Millisecond)
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatalf("normal request failed while slow clients hang: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("normal request: %d %q", resp.StatusCode, body)
	}

	wg.Wait()
	for i, d := range closedAfter {
		if d == 0 {
			t.Fatalf("slow connection %d was never closed by the server", i)
		}
		if d < readHeader-500*time.Millisecond {
			t.Fatalf("slow connection %d closed after %v, before ReadHeaderTimeout %v", i, d, readHeader)
		}
	}
}
