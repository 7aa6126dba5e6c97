// Package loadgen is the load tool behind `bulwark bench`: it seeds its own
// clients, a user and API keys on a running server through the admin API,
// drives the public listener with N concurrent keep-alive clients for a
// fixed duration (or request cap) per scenario, and reports throughput,
// latency percentiles, errors by status, and the server's CPU cost per
// 1,000 requests scraped from the admin listener's /metrics.
//
// It measures from outside, over real HTTP, exactly as a deployment is
// used; it never reaches into the server's process or database.
package loadgen
