package storage

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// RevokedAccessChannel is the Notifier channel on which every backend
// announces access tokens that stopped being valid before their expiry
// (revocation, refresh rotation or reuse, containment, client deletion).
// Caches of token validity (the forward-auth deny list) subscribe to it.
//
// Each payload is RevokedAccessPayload(key, expiresAt): the token's store
// key (HashKey of its signature) and its expiry. RevokedAccessOverflow
// instead means "too many to list": every token issued before it must be
// looked up in the store. An empty payload (Notifier reconnect) means the
// same.
const RevokedAccessChannel = "bulwark_access_revoked"

// RevokedAccessOverflow is the payload that replaces the list when one
// statement revokes more tokens than RevokedAccessListLimit.
const RevokedAccessOverflow = "*"

// RevokedAccessListLimit is how many tokens one revocation announces one
// by one; beyond it, one RevokedAccessOverflow is sent instead. The
// Postgres trigger (migrations/0007) uses the same number.
const RevokedAccessListLimit = 100

// RevokedAccessPayload formats one announcement.
func RevokedAccessPayload(key string, expiresAt time.Time) string {
	return key + " " + strconv.FormatInt(expiresAt.Unix(), 10)
}

// ErrBadRevocationPayload is returned for a payload that is neither an
// announcement nor the overflow marker.
var ErrBadRevocationPayload = errors.New("storage: malformed access revocation payload")

// ParseRevokedAccess reads a payload written by RevokedAccessPayload.
func ParseRevokedAccess(payload string) (key string, expiresAt time.Time, err error) {
	key, exp, ok := strings.Cut(payload, " ")
	if !ok || len(key) != 64 {
		return "", time.Time{}, ErrBadRevocationPayload
	}
	sec, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return "", time.Time{}, ErrBadRevocationPayload
	}
	return key, time.Unix(sec, 0), nil
}
