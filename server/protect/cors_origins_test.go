package protect

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/clientcache"
	"github.com/bulwark-auth/bulwark/storage/memory"
	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
)

// originsWithin bounds how long a client change may take to reach another
// replica's origins (a notification; the periodic reload is minutes).
const originsWithin = 15 * time.Second

func spaClient(id string, origins ...string) *storage.Client {
	return &storage.Client{
		ID: id, Name: "SPA " + id,
		RedirectURIs:            []string{"https://" + id + ".example/callback"},
		GrantTypes:              []string{"authorization_code", "refresh_token"},
		ResponseTypes:           []string{"code"},
		Scopes:                  []string{"openid"},
		TokenEndpointAuthMethod: storage.AuthMethodNone,
		ApplicationType:         storage.AppTypeWeb,
		AllowedCORSOrigins:      origins,
	}
}

func waitOrigins(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(originsWithin)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", originsWithin, what)
		}
		time.Sleep(10 * time.Millisecond) // polling, not synchronization
	}
}

// runOrigins follows client changes until the test ends and waits for the
// subscription.
func runOrigins(t *testing.T, o *ClientOrigins) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		o.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	waitOrigins(t, "the origins to subscribe", o.Subscribed)
}

// TestClientOriginsFollowChangesOnAnotherReplica: clients changed through
// replica A's client cache (which announces every change) reach replica
// B's origins, the union preflights follow and the per-client answers:
// created, "+" expanded, changed, disabled, deleted. On Postgres the two
// replicas are two stores on one database; on the memory store (--dev, one
// process) the announcement is in-process.
func TestClientOriginsFollowChangesOnAnotherReplica(t *testing.T) {
	backends := []struct {
		name string
		open func(t *testing.T) (a, b storage.Store)
	}{
		{"backend=postgres", func(t *testing.T) (storage.Store, storage.Store) {
			dsn := pgtest.NewDatabase(t)
			return pgtest.OpenStore(t, dsn, nil), pgtest.OpenStore(t, dsn, nil)
		}},
		{"backend=memory", func(*testing.T) (storage.Store, storage.Store) {
			m := memory.New(memory.Config{})
			return m, m
		}},
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx := t.Context()
			innerA, innerB := be.open(t)
			a := clientcache.New(innerA, clientcache.Config{})
			// Present before B starts: its first load finds it.
			must(t, a.CreateClient(ctx, spaClient("early", "https://early.example")))
			b := NewClientOrigins(clientcache.New(innerB, clientcache.Config{}), time.Hour, nil)
			runOrigins(t, b)
			waitOrigins(t, "the first load", func() bool { return b.ClientAllows("early", "https://early.example") })

			c := spaClient("spa", "+", "https://admin.example")
			must(t, a.CreateClient(ctx, c))
			waitOrigins(t, "a created client's origins", func() bool {
				return b.AnyAllows("https://spa.example") && b.ClientAllows("spa", "https://admin.example")
			})
			if !b.ClientAllows("spa", "https://spa.example") || b.ClientAllows("early", "https://spa.example") || b.ClientAllows("spa", "https://early.example") {
				t.Fatal("an origin answered for the wrong client")
			}

			c.AllowedCORSOrigins = []string{"https://new.example"}
			must(t, a.UpdateClient(ctx, c, c.Version))
			waitOrigins(t, "an updated client's origins", func() bool {
				return b.AnyAllows("https://new.example") && !b.AnyAllows("https://spa.example") && !b.AnyAllows("https://admin.example")
			})

			// Another client registering the same origin keeps it in the
			// union when the first one drops it.
			must(t, a.CreateClient(ctx, spaClient("twin", "https://new.example")))
			waitOrigins(t, "the twin", func() bool { return b.ClientAllows("twin", "https://new.example") })
			c.Disabled = true
			must(t, a.UpdateClient(ctx, c, c.Version))
			waitOrigins(t, "a disabled client's origins to go", func() bool { return !b.ClientAllows("spa", "https://new.example") })
			if !b.AnyAllows("https://new.example") {
				t.Fatal("the twin's origin left the union with the disabled client")
			}
			must(t, a.DeleteClient(ctx, "twin"))
			waitOrigins(t, "a deleted client's origins to go", func() bool { return !b.AnyAllows("https://new.example") })
			if got := b.Union(); !slices.Equal(got, []string{"https://early.example"}) {
				t.Fatalf("union = %q", got)
			}
		})
	}
}

// TestClientOriginsReloadRepairsMissedChanges: a change made without an
// announcement (a lost notification) is picked up by the full reload that
// every (re)subscription and every period runs.
func TestClientOriginsReloadRepairsMissedChanges(t *testing.T) {
	ctx := t.Context()
	store := memory.New(memory.Config{})
	o := NewClientOrigins(store, time.Hour, nil)
	must(t, o.Load(ctx))
	// Straight into the store: nothing announces it.
	must(t, store.CreateClient(ctx, spaClient("quiet", "https://quiet.example")))
	if o.AnyAllows("https://quiet.example") {
		t.Fatal("an unannounced change arrived without a reload")
	}
	must(t, o.Load(ctx))
	if !o.ClientAllows("quiet", "https://quiet.example") {
		t.Fatal("the reload missed the client")
	}
	// Many clients: Load pages through all of them.
	for i := range 1200 {
		must(t, store.CreateClient(ctx, spaClient(fmt.Sprintf("bulk-%04d", i), "https://bulk.example")))
	}
	must(t, store.CreateClient(ctx, spaClient("zz-last", "https://last.example")))
	must(t, o.Load(ctx))
	if !o.ClientAllows("zz-last", "https://last.example") {
		t.Fatal("Load stopped before the last page")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
