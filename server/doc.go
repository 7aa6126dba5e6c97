// Package server assembles Bulwark's two HTTP listeners: the public one
// (OAuth/OIDC endpoints, login pages, health) and the admin one (admin API,
// console, metrics). It owns the cross-cutting middleware every request goes
// through — request id, access log, panic recovery — and the listener
// lifecycle. The endpoints themselves live in server/oauth, server/admin and
// server/console and are handed in through Config, so cmd/bulwark builds the
// whole dependency graph explicitly.
package server
