package audit

import (
	"context"
	"strings"
	"time"

	"github.com/bulwark-auth/bulwark/server/reqinfo"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/sirupsen/logrus"
)

// DefaultTimeout bounds the store write made on the request path: a slow
// database delays a request by at most this much, and the event is still
// logged.
const DefaultTimeout = 2 * time.Second

// Sink records audit events. It is safe for concurrent use.
type Sink struct {
	store   storage.AuditStore
	log     logrus.FieldLogger
	now     func() time.Time
	timeout time.Duration
	observe func(e *storage.AuditEvent, stored error)
}

// Option configures a Sink.
type Option func(*Sink)

// WithObserver calls f after every event is recorded, with the store
// error (nil when stored): metrics count sign-in outcomes and failed audit
// writes here. f must be fast and must not keep e.
func WithObserver(f func(e *storage.AuditEvent, stored error)) Option {
	return func(s *Sink) { s.observe = f }
}

// NewSink returns a sink writing to store and log. A nil store logs only
// (useful for tools without a database); a nil now means time.Now.
func NewSink(store storage.AuditStore, log logrus.FieldLogger, now func() time.Time, opts ...Option) *Sink {
	if now == nil {
		now = time.Now
	}
	s := &Sink{store: store, log: log, now: now, timeout: DefaultTimeout}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Record writes e. It fills Time (when zero) and RequestID from ctx, and
// SourceIP, UserAgent, ClientID and Subject from the request's reqinfo when
// the caller left them empty; it scrubs secret-looking values. It never
// panics and never fails the caller: a store failure is logged (the log
// line is written either way). The write survives cancellation of ctx (a
// client hanging up must not erase the trace of what it did) but is bounded
// by DefaultTimeout.
func (s *Sink) Record(ctx context.Context, e storage.AuditEvent) {
	defer s.recoverPanic(e.Event)
	s.shape(ctx, &e)
	s.emit(ctx, &e, false)
}

// WithToken is Record for the event of a token the request is about to
// mint, written in the same round trip as the token. It shapes e like
// Record and returns a context that carries it to the store
// (storage.TokenAudit), which writes it together with the access token:
// both or neither. Mint with the returned context, then call issued once
// the mint succeeded: it writes the log line, and stores the event itself
// if no store took it. After a failed mint do not call issued: the event
// was stored only with a token, and there is none.
func (s *Sink) WithToken(ctx context.Context, e storage.AuditEvent) (_ context.Context, issued func(context.Context)) {
	s.shape(ctx, &e)
	a := storage.NewTokenAudit(e)
	return storage.WithTokenAudit(ctx, a), func(ctx context.Context) {
		defer s.recoverPanic(e.Event)
		s.emit(ctx, a.Event(), a.Taken())
	}
}

func (s *Sink) recoverPanic(event string) {
	if v := recover(); v != nil {
		s.log.WithField("event", event).Error("audit: recording panicked")
	}
}

// shape fills e's time and request facts and makes it safe to store and
// log. Every event passes through here.
func (s *Sink) shape(ctx context.Context, e *storage.AuditEvent) {
	if e.Time.IsZero() {
		e.Time = s.now().UTC()
	}
	if info := reqinfo.From(ctx); info != nil {
		e.RequestID = info.ID
		fill(&e.SourceIP, info.RemoteIP)
		fill(&e.UserAgent, info.UserAgent)
		fill(&e.ClientID, info.ClientID())
		fill(&e.Subject, info.Subject())
	}
	Sanitize(e)
	Scrub(e)
}

// emit stores e unless stored says a store already did, tells the
// observer, and writes the log line.
func (s *Sink) emit(ctx context.Context, e *storage.AuditEvent, stored bool) {
	// "event_time", not "time": logrus owns "time" (the line's own
	// timestamp) and would rename ours to "fields.time".
	fields := logrus.Fields{
		"audit":      true,
		"event":      e.Event,
		"event_time": e.Time.Format(time.RFC3339Nano),
		"actor":      e.Actor,
		"source_ip":  e.SourceIP,
		"client_id":  e.ClientID,
		"subject":    e.Subject,
		"outcome":    e.Outcome,
		"request_id": e.RequestID,
	}
	// Details become flat "details.<key>" fields: readable as key=value in
	// text logs (a nested map would print as Go's map[...]) and still
	// grouped by prefix in JSON.
	for k, v := range e.Details {
		fields["details."+k] = v
	}
	entry := s.log.WithFields(fields)
	var err error
	if s.store != nil && !stored {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
		defer cancel()
		err = s.store.AppendAudit(wctx, e)
	}
	if s.observe != nil {
		s.observe(e, err)
	}
	if err != nil {
		entry.WithError(err).Error("audit: storing event failed")
		return
	}
	entry.Info("audit")
}

func fill(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

// Sanitize makes every text field and detail of e storable: invalid UTF-8
// becomes U+FFFD and NUL bytes are dropped. Postgres refuses both in text
// and jsonb (SQLSTATE 22021, 22P05), and any client chooses its own
// User-Agent, so without this one request could keep its event out of the
// trail. Every event passes through here, whoever records it.
func Sanitize(e *storage.AuditEvent) {
	for _, p := range []*string{&e.Event, &e.Actor, &e.SourceIP, &e.UserAgent, &e.ClientID,
		&e.Subject, &e.Outcome, &e.RequestID} {
		*p = clean(*p)
	}
	if len(e.Details) == 0 {
		return
	}
	// Always a fresh map: the caller's may be shared.
	d := make(map[string]string, len(e.Details))
	for k, v := range e.Details {
		d[clean(k)] = clean(v)
	}
	e.Details = d
}

// clean returns s as valid UTF-8 without NUL bytes.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "")
}

// Redacted replaces values Scrub refuses.
const Redacted = "[redacted]"

// Scrub replaces every free-text field and detail value of e that looks
// like a credential with Redacted. It is a safety net, not a licence:
// callers must not put secrets in events in the first place.
func Scrub(e *storage.AuditEvent) {
	for _, p := range []*string{&e.Actor, &e.Subject, &e.ClientID, &e.UserAgent, &e.Outcome, &e.Event} {
		if LooksSecret(*p) {
			*p = Redacted
		}
	}
	for k, v := range e.Details {
		if LooksSecret(v) || LooksSecret(k) {
			// Copy on first write: the caller's map may be shared.
			d := make(map[string]string, len(e.Details))
			for k2, v2 := range e.Details {
				if LooksSecret(k2) {
					k2 = Redacted
				}
				if LooksSecret(v2) {
					v2 = Redacted
				}
				d[k2] = v2
			}
			e.Details = d
			return
		}
	}
}

// redactedIDLen is keys/apikey.IDLen: the public id in "bwk_<id>_…".
const redactedIDLen = 12

// LooksSecret reports whether v looks like an API key ("bwk_…", other than
// the redacted "bwk_<id>_…" form keys/apikey produces for logs), a JWT or
// other JOSE object ("eyJ…", the base64 of `{"`), or an Argon2id hash,
// possibly after an "Authorization" scheme.
func LooksSecret(v string) bool {
	t := strings.TrimSpace(v)
	for _, scheme := range []string{"Bearer ", "bearer ", "Basic ", "basic "} {
		t = strings.TrimPrefix(t, scheme)
	}
	switch {
	case strings.HasPrefix(t, "bwk_"):
		return !(strings.HasSuffix(t, "_…") && len(t) == len("bwk_")+redactedIDLen+len("_…"))
	case strings.HasPrefix(t, "eyJ"):
		return true
	case strings.Contains(t, "$argon2id$"):
		return true
	}
	return false
}
