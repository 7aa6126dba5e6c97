// Package metrics owns Bulwark's Prometheus instrumentation: HTTP request
// counts and latencies by route template, OAuth outcomes (tokens issued,
// errors), protection events (rate limited, blocked), database pool and
// signing key gauges, and the /metrics handler.
//
// Instrumentation sits at the HTTP boundary and the pool, never inside
// storage methods. Label values come from small fixed sets (route
// templates, grant types, error codes, endpoint classes); raw paths, client
// ids and anything a caller typed never become labels, so cardinality stays
// bounded and nothing secret reaches the metrics endpoint.
package metrics
