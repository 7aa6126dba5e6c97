package protect

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/server/reqinfo"
	"github.com/bulwark-auth/bulwark/storage"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// pipelined stands in for the server's pipeline in these unit tests: it
// establishes reqinfo (the IP is the direct peer) and runs StrictInput,
// which records the claimed client id, before h.
func pipelined(h http.Handler) http.Handler {
	return withInfo(StrictInput(InputConfig{})(h))
}

// withInfo establishes reqinfo only (the IP is the direct peer).
func withInfo(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := parseHostAddr(r.RemoteAddr)
		info := &reqinfo.Info{ID: "test", IP: ip, RemoteIP: ip.String()}
		h.ServeHTTP(w, r.WithContext(reqinfo.With(r.Context(), info)))
	})
}

// decodeOAuthError reads an OAuth JSON error body and checks its media type.
func decodeOAuthError(t *testing.T, resp *http.Response) oauthError {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json;charset=UTF-8" {
		t.Fatalf("Content-Type = %q", ct)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var e oauthError
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("body %q is not JSON: %v", b, err)
	}
	return e
}

// blockStore is an in-memory storage.BlockStore shared by "replicas".
type blockStore struct {
	mu     sync.Mutex
	blocks map[[2]string]storage.Block
	fail   error
}

func newBlockStore() *blockStore { return &blockStore{blocks: map[[2]string]storage.Block{}} }

func (s *blockStore) PutBlock(_ context.Context, b *storage.Block) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.blocks[[2]string{b.Kind, b.Value}] = *b
	return nil
}

func (s *blockStore) ListBlocks(_ context.Context, now time.Time) ([]*storage.Block, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*storage.Block
	for _, b := range s.blocks {
		if now.Before(b.ExpiresAt) {
			b := b
			out = append(out, &b)
		}
	}
	return out, nil
}

func (s *blockStore) DeleteBlock(_ context.Context, kind, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.blocks, [2]string{kind, value})
	return nil
}

// notifier is an in-process storage.Notifier fanning out to subscribers.
type notifier struct {
	mu   sync.Mutex
	subs map[string][]chan string
}

func newNotifier() *notifier { return &notifier{subs: map[string][]chan string{}} }

func (n *notifier) Notify(_ context.Context, channel, payload string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, ch := range n.subs[channel] {
		select {
		case ch <- payload:
		default:
		}
	}
	return nil
}

func (n *notifier) Subscribe(ctx context.Context, channel string) (<-chan string, error) {
	ch := make(chan string, 8)
	n.mu.Lock()
	n.subs[channel] = append(n.subs[channel], ch)
	n.mu.Unlock()
	return ch, nil
}

var (
	_ storage.BlockStore = (*blockStore)(nil)
	_ storage.Notifier   = (*notifier)(nil)
)
