package protect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/clientcache"
)

// OriginStore is what ClientOrigins reads: the clients, and the
// notifications storage/clientcache publishes on clientcache.Channel when
// one changes (on every replica).
type OriginStore interface {
	ClientByID(ctx context.Context, id string) (*storage.Client, error)
	ListClients(ctx context.Context, opts storage.ListOptions) ([]*storage.Client, error)
	Subscribe(ctx context.Context, channel string) (<-chan string, error)
}

// DefaultOriginsReload is how often ClientOrigins reloads every client as
// the safety net for lost notifications.
const DefaultOriginsReload = time.Minute

// ClientOrigins keeps every enabled client's CORS origins in memory ("+"
// expanded to the origins of its redirect URIs) and their union, which
// preflights follow. Load fills it; Run follows client changes on every
// replica through the client-change channel, reloading one client per
// notification and everything when the subscription (re)starts, and
// periodically. It implements Origins; lookups take a read lock and touch
// no database.
type ClientOrigins struct {
	store  OriginStore
	log    logrus.FieldLogger
	reload time.Duration

	mu       sync.RWMutex
	byClient map[string][]string
	union    map[string]int // origin → number of clients registering it

	subscribed atomic.Bool
}

var _ Origins = (*ClientOrigins)(nil)

// NewClientOrigins returns an empty set over store; reload is the safety-net
// period (DefaultOriginsReload when zero), log may be nil.
func NewClientOrigins(store OriginStore, reload time.Duration, log logrus.FieldLogger) *ClientOrigins {
	if reload <= 0 {
		reload = DefaultOriginsReload
	}
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	return &ClientOrigins{store: store, log: log, reload: reload, byClient: map[string][]string{}, union: map[string]int{}}
}

// ClientAllows implements Origins.
func (o *ClientOrigins) ClientAllows(clientID, origin string) bool {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return slices.Contains(o.byClient[clientID], origin)
}

// AnyAllows implements Origins.
func (o *ClientOrigins) AnyAllows(origin string) bool {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return o.union[origin] > 0
}

// Union returns the registered origins, sorted (diagnostics, tests).
func (o *ClientOrigins) Union() []string {
	o.mu.RLock()
	defer o.mu.RUnlock()
	out := make([]string, 0, len(o.union))
	for origin := range o.union {
		out = append(out, origin)
	}
	slices.Sort(out)
	return out
}

// Subscribed reports whether Run currently follows client changes.
func (o *ClientOrigins) Subscribed() bool { return o.subscribed.Load() }

// Load replaces the whole set with the stored clients' origins.
func (o *ClientOrigins) Load(ctx context.Context) error {
	const page = 500
	byClient := map[string][]string{}
	union := map[string]int{}
	after := ""
	for {
		list, err := o.store.ListClients(ctx, storage.ListOptions{After: after, Limit: page})
		if err != nil {
			return fmt.Errorf("cors origins: list clients: %w", err)
		}
		for _, c := range list {
			if origins := CORSOriginsOf(c); len(origins) > 0 {
				byClient[c.ID] = origins
				for _, origin := range origins {
					union[origin]++
				}
			}
		}
		if len(list) < page {
			break
		}
		after = list[len(list)-1].ID
	}
	o.mu.Lock()
	o.byClient, o.union = byClient, union
	o.mu.Unlock()
	return nil
}

// Refresh re-reads one client (a notification named it).
func (o *ClientOrigins) Refresh(ctx context.Context, id string) error {
	c, err := o.store.ClientByID(ctx, id)
	var origins []string
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return fmt.Errorf("cors origins: read client: %w", err)
	default:
		origins = CORSOriginsOf(c)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, origin := range o.byClient[id] {
		if o.union[origin]--; o.union[origin] <= 0 {
			delete(o.union, origin)
		}
	}
	delete(o.byClient, id)
	if len(origins) > 0 {
		o.byClient[id] = origins
		for _, origin := range origins {
			o.union[origin]++
		}
	}
	return nil
}

// Run follows client changes until ctx ends: each notification re-reads
// the client it names (an empty one reloads everything); every
// (re)subscription and every reload period reloads everything, since
// notices may have been missed.
func (o *ClientOrigins) Run(ctx context.Context) {
	const (
		minBackoff = 100 * time.Millisecond
		maxBackoff = 10 * time.Second
	)
	backoff := minBackoff
	for ctx.Err() == nil {
		ch, err := o.store.Subscribe(ctx, clientcache.Channel)
		if err == nil {
			o.subscribed.Store(true)
			backoff = minBackoff
			o.follow(ctx, ch)
			o.subscribed.Store(false)
		} else if ctx.Err() == nil {
			o.log.WithError(err).Warn("cors origins: subscribing to client changes failed")
		}
		if ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// follow reloads everything, then applies notifications from ch until it
// closes or ctx ends, reloading everything every period.
func (o *ClientOrigins) follow(ctx context.Context, ch <-chan string) {
	o.loadLogged(ctx)
	tick := time.NewTicker(o.reload)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			o.loadLogged(ctx)
		case id, ok := <-ch:
			switch {
			case !ok:
				return
			case id == "":
				o.loadLogged(ctx)
			default:
				if err := o.Refresh(ctx, id); err != nil && ctx.Err() == nil {
					// The next period's reload repairs it.
					o.log.WithError(err).Warn("cors origins: re-reading a changed client failed")
				}
			}
		}
	}
}

func (o *ClientOrigins) loadLogged(ctx context.Context) {
	if err := o.Load(ctx); err != nil && ctx.Err() == nil {
		o.log.WithError(err).Warn("cors origins: reloading clients failed; serving the previous origins")
	}
}

// CORSOriginsOf returns the browser origins client c registered, with "+"
// (storage.CORSOriginsFromRedirects) replaced by the origins of its http(s)
// redirect URIs, as a browser serializes them (lower case, no default
// port). A disabled client has none.
func CORSOriginsOf(c *storage.Client) []string {
	if c == nil || c.Disabled {
		return nil
	}
	var out []string
	add := func(origin string) {
		if origin != "" && !slices.Contains(out, origin) {
			out = append(out, origin)
		}
	}
	for _, entry := range c.AllowedCORSOrigins {
		if entry != storage.CORSOriginsFromRedirects {
			add(entry)
			continue
		}
		for _, ru := range c.RedirectURIs {
			add(originOf(ru))
		}
	}
	return out
}

// originOf is the serialized origin (RFC 6454 §6.2) of an http or https
// URL, or "".
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	scheme := strings.ToLower(u.Scheme)
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if scheme != "http" && scheme != "https" || host == "" {
		return ""
	}
	if scheme == "http" && port == "80" || scheme == "https" && port == "443" {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host
}
