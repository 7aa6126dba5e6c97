// Package profiling mounts Go's runtime profiles (net/http/pprof) on the
// admin listener when the operator turns them on with --pprof.
//
// Profiles are served to loopback peers only, judged by the TCP peer
// address and never by X-Forwarded-For: a profile is taken by an operator
// on the machine (or through an SSH tunnel), and `go tool pprof` cannot
// present the admin API's bearer keys conveniently. Goroutine and heap
// profiles show code paths and sizes, not memory contents, but they are
// still internal detail, so everyone else gets a plain 404. The cmdline
// endpoint is not mounted at all: the command line may carry --secret.
package profiling

import (
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"

	"github.com/gorilla/mux"

	"github.com/bulwark-auth/bulwark/server/protect"
)

// Prefix is where the profiles live.
const Prefix = "/debug/pprof/"

// Profiles is a server.Mounter for the admin listener.
type Profiles struct{}

// Register mounts the pprof handlers under Prefix.
func (Profiles) Register(r *mux.Router) {
	sub := r.PathPrefix(Prefix).Subrouter()
	// Each route declares its policy (operations: API headers, no-store),
	// as every route of the server does.
	ops := func(h http.HandlerFunc) http.Handler { return protect.Route(protect.Ops(), loopbackOnly(h)) }
	sub.Handle("/profile", ops(pprof.Profile)).Methods(http.MethodGet)
	sub.Handle("/trace", ops(pprof.Trace)).Methods(http.MethodGet)
	sub.Handle("/symbol", ops(pprof.Symbol)).Methods(http.MethodGet, http.MethodPost)
	// Index serves the named runtime profiles (heap, goroutine, allocs,
	// block, mutex, threadcreate) and the index page itself.
	sub.PathPrefix("/").Handler(ops(pprof.Index)).Methods(http.MethodGet)
}

// loopbackOnly answers 404 to any peer that is not on this machine.
func loopbackOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isLoopback(r.RemoteAddr) {
			http.NotFound(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func isLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}
