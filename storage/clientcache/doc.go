// Package clientcache keeps OAuth clients in memory for the token
// endpoint's hot path, as a decorator around any storage.Store.
//
// fosite calls GetClient on every token request; without a cache each call
// is a database round trip, the largest cost of a client-credentials token
// after the INSERT of the session. The cache holds positive GetClient
// results only (an unknown or disabled client always goes to the store) and
// hands out copies, so callers cannot change what other requests see.
//
// Freshness: every client mutation made through the decorator evicts the
// client locally and publishes its id on Channel after the write succeeded;
// Run evicts ids published by other replicas. Notifications can be lost
// (a LISTEN connection drops, a slow subscriber), so entries also expire
// after a TTL, and the whole cache is purged whenever the subscription
// (re)starts. Admin reads (ClientByID, ListClients) always bypass the cache:
// administrators must see the stored truth.
package clientcache
