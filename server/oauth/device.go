package oauth

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/server/protect"
	"github.com/bulwark-auth/bulwark/server/reqinfo"
	"github.com/bulwark-auth/bulwark/storage"
)

// Device authorization grant (RFC 8628): the device asks for codes at
// /oauth2/device/auth, the user enters the user code at /device (pages in
// device_pages.go), and the device polls the token endpoint with the
// device code (deviceGrant, device_grant.go).

// GrantTypeDeviceCode is the grant type of RFC 8628 §3.4.
const GrantTypeDeviceCode = storage.GrantTypeDeviceCode

// Paths of the device flow.
const (
	pathDeviceAuthorization = "/oauth2/device/auth"
	pathDevice              = "/device"
	pathDeviceDecision      = "/device/decision"
)

// Device flow timing. A person needs a few minutes to find a second
// screen, sign in and answer; ten minutes is what RFC 8628's example and
// the common servers use. Five seconds is the RFC's default interval.
const (
	deviceCodeLifespan = 10 * time.Minute
	devicePollInterval = 5 * time.Second
)

// userCodeAlphabet is RFC 8628 §6.1's example: 20 consonants without
// vowels (no words) and without look-alikes; 8 of them give 20^8 ≈ 2^34.6
// codes, enough with the guessing limits below (§5.1).
const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

const userCodeLength = 8

// maxUserCodeInput bounds what is normalised: dashes and spaces around 8
// characters, not a megabyte of them.
const maxUserCodeInput = 32

// newUserCode draws a user code from crypto/rand by rejection sampling,
// so every letter is equally likely.
func newUserCode() (string, error) {
	out := make([]byte, 0, userCodeLength)
	buf := make([]byte, 16)
	limit := byte(256 - 256%len(userCodeAlphabet)) // 240: a multiple of 20
	for len(out) < userCodeLength {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("oauth: random: %w", err)
		}
		for _, b := range buf {
			if b < limit && len(out) < userCodeLength {
				out = append(out, userCodeAlphabet[int(b)%len(userCodeAlphabet)])
			}
		}
	}
	return string(out), nil
}

// normalizeUserCode turns what a user typed into the canonical 8 letters:
// case, dashes and spaces do not matter. ok is false for anything that
// cannot be a user code.
func normalizeUserCode(raw string) (string, bool) {
	if len(raw) > maxUserCodeInput {
		return "", false
	}
	var b strings.Builder
	for _, r := range strings.ToUpper(raw) {
		switch {
		case r == '-' || r == ' ':
		case r < 128 && strings.ContainsRune(userCodeAlphabet, r):
			b.WriteRune(r)
		default:
			return "", false
		}
	}
	if b.Len() != userCodeLength {
		return "", false
	}
	return b.String(), true
}

// displayUserCode shows a normalised code as XXXX-XXXX.
func displayUserCode(code string) string {
	if len(code) != userCodeLength {
		return code
	}
	return code[:4] + "-" + code[4:]
}

// deviceAuthorizationResponse is RFC 8628 §3.2.
type deviceAuthorizationResponse struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int64  `json:"expires_in"`
	Interval                int64  `json:"interval"`
}

// Audit events of the device flow. Details never hold a code.
const (
	EventDeviceAuthorization = "oauth.device.authorization"
	EventDeviceApproved      = "oauth.device.approved"
	EventDeviceDenied        = "oauth.device.denied"
	EventDeviceUserCode      = "oauth.device.user_code"
)

// handleDeviceAuthorization is the device authorization endpoint (RFC 8628
// §3.1–3.2). The client authenticates as at the token endpoint (a public
// client with "none" names itself with client_id) and must be registered
// for the device_code grant.
func (p *Provider) handleDeviceAuthorization(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := parseBody(w, r); err != nil {
		p.writeJSONError(w, r, fosite.ErrInvalidRequest.WithHint("The request body could not be parsed.").WithWrap(err))
		return
	}
	client, ok := p.authenticateEndpointClient(w, r)
	if !ok {
		return
	}
	reqinfo.From(ctx).SetClientID(client.ID)
	if !client.GetGrantTypes().Has(GrantTypeDeviceCode) {
		p.writeJSONError(w, r, fosite.ErrUnauthorizedClient.WithHint("The client is not allowed to use the device authorization grant."))
		return
	}
	scopes := fosite.RemoveEmpty(strings.Split(r.PostForm.Get("scope"), " "))
	strategy := p.fc.GetScopeStrategy(ctx)
	for _, s := range scopes {
		if !strategy(client.GetScopes(), s) {
			p.writeJSONError(w, r, fosite.ErrInvalidScope.WithHintf("The client is not allowed to request scope '%s'.", s))
			return
		}
	}
	audience := fosite.GetAudiences(r.PostForm)
	if err := p.fc.GetAudienceStrategy(ctx)(client.GetAudience(), audience); err != nil {
		p.writeJSONError(w, r, err)
		return
	}

	now := p.cfg.Now().UTC().Truncate(time.Microsecond)
	var deviceCode, userCode string
	for attempt := 0; ; attempt++ {
		var err error
		if deviceCode, err = randomToken(); err == nil {
			userCode, err = newUserCode()
		}
		if err != nil {
			p.writeJSONError(w, r, err)
			return
		}
		err = p.cfg.Store.CreateDeviceAuthorization(ctx, &storage.DeviceAuthorization{
			DeviceCodeHash: storage.HashKey(deviceCode),
			UserCodeHash:   storage.HashKey(userCode),
			UserCodeHint:   userCode[:4],
			ClientID:       client.ID,
			RequestID:      uuid.NewString(),
			Scopes:         scopes,
			Audience:       audience,
			Interval:       devicePollInterval,
			CreatedAt:      now,
			ExpiresAt:      now.Add(deviceCodeLifespan),
		})
		if err == nil {
			break
		}
		// A user code collides with a live one about once in 2^34 / live
		// codes draws; a few fresh draws settle it.
		if !errors.Is(err, storage.ErrConflict) || attempt == 4 {
			p.writeJSONError(w, r, fmt.Errorf("oauth: store device authorization: %w", err))
			return
		}
	}
	p.audit(ctx, storage.AuditEvent{Event: EventDeviceAuthorization, ClientID: client.ID, Outcome: OutcomeSuccess,
		Details: map[string]string{"scope": strings.Join(scopes, " ")}})

	shown := displayUserCode(userCode)
	body, err := json.Marshal(deviceAuthorizationResponse{
		DeviceCode:              deviceCode,
		UserCode:                shown,
		VerificationURI:         p.cfg.Issuer + pathDevice,
		VerificationURIComplete: p.cfg.Issuer + pathDevice + "?user_code=" + shown,
		ExpiresIn:               int64(deviceCodeLifespan / time.Second),
		Interval:                int64(devicePollInterval / time.Second),
	})
	if err != nil {
		p.writeJSONError(w, r, fmt.Errorf("oauth: encode device authorization: %w", err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// authenticateEndpointClient authenticates the client of a request to an
// endpoint outside fosite's own (the device authorization endpoint) with
// the token endpoint's methods and defences: the client-secret guard keyed
// on the claimed client id, the failure signal, and 429 once the client is
// locked. It answers the request itself when it returns false.
func (p *Provider) authenticateEndpointClient(w http.ResponseWriter, r *http.Request) (*storage.Client, bool) {
	ctx := r.Context()
	claimed := reqinfo.ClaimedClientID(ctx)
	guard := p.cfg.Defense.ClientGuard
	if guard != nil && claimed != "" {
		ctx = guard.WithAttempt(ctx, claimed, netip.Addr{})
		r = r.WithContext(ctx)
	} else {
		guard = nil
	}
	f, ok := p.oauth.(*fosite.Fosite)
	if !ok {
		p.writeJSONError(w, r, fosite.ErrServerError.WithDebug("provider is not *fosite.Fosite"))
		return nil, false
	}
	fc, err := f.AuthenticateClient(ctx, r, r.PostForm)
	if err == nil {
		if c, ok := fc.(*storage.Client); ok && !c.Disabled {
			return c, true
		}
		err = fosite.ErrInvalidClient.WithHint("The client is not usable here.")
	}
	if unavailable(err) {
		p.writeJSONError(w, r, err)
		return nil, false
	}
	if p.clientLocked(ctx, w, r) {
		return nil, false
	}
	p.observe(r, protect.SignalInvalidClient, claimed)
	if p.clientFailed(ctx, w, guard, claimed) {
		return nil, false
	}
	p.writeJSONError(w, r, fosite.ErrInvalidClient.WithWrap(err).WithHint("Client authentication failed."))
	return nil, false
}

// deviceLookup finds the pending device authorization of a user code the
// user typed, counting the attempt against the guessing limits first:
// per address (failures only: the attempt is refunded when the code is
// right, so many people behind one NAT entering their codes never add up)
// and per device code (every entry of one code: a code is typed by one
// person once or twice; one entered again and again is being shared).
// A miss is reported to the anomaly detector and to the address's failure
// budget. The verdict says whether the lookup was allowed at all.
func (p *Provider) deviceLookup(ctx context.Context, raw string) (*storage.DeviceAuthorization, protect.Decision, error) {
	ip := reqinfo.ClientIP(ctx)
	addrKey := "addr:" + ip.String()
	verdict, err := reserve(ctx, p.cfg.Defense.DeviceGuard, addrKey, netip.Addr{})
	if err != nil || !verdict.Allowed {
		return nil, verdict, err
	}
	var d *storage.DeviceAuthorization
	if code, ok := normalizeUserCode(raw); ok {
		d, err = p.cfg.Store.DeviceAuthorizationByUserCode(ctx, storage.HashKey(code), p.cfg.Now())
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, verdict, fmt.Errorf("oauth: look up user code: %w", err)
		}
	}
	if d == nil {
		if p.cfg.Defense.Signals != nil {
			p.cfg.Defense.Signals.Observe(ctx, protect.SignalInvalidUserCode, ip, "")
		}
		reqinfo.From(ctx).MarkFailure()
		p.audit(ctx, storage.AuditEvent{Event: EventDeviceUserCode, Outcome: OutcomeFailure})
		return nil, verdict, nil
	}
	p.guardSucceeded(ctx, p.cfg.Defense.DeviceGuard, addrKey)
	perCode, err := reserve(ctx, p.cfg.Defense.DeviceGuard, "code:"+d.DeviceCodeHash, netip.Addr{})
	if err != nil || !perCode.Allowed {
		return nil, perCode, err
	}
	return d, verdict, nil
}
