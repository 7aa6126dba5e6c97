package console

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/storage"
)

// Overview limits: counting pages through listings, so it stops somewhere
// and says "at least".
const (
	countPages       = 50
	auditWindowPages = 50
	recentSecurity   = 8
)

// count is a figure that may have been capped.
type count struct {
	N      int
	Capped bool
	Shown  bool
}

func (n count) String() string {
	if n.Capped {
		return strconv.Itoa(n.N) + "+"
	}
	return strconv.Itoa(n.N)
}

type overviewData struct {
	Clients, Users, APIKeys count
	// Blocks is the number of sources blocked now.
	Blocks                 count
	HasActivity            bool
	Issued, Errors, Failed count
	Security               []*storage.AuditEvent
	HasKeys                bool
	Keys                   keysData
}

// countAll pages through a listing by id.
func countAll(ctx context.Context, list func(after string) ([]string, error)) (count, error) {
	n, after := 0, ""
	for range countPages {
		ids, err := list(after)
		if err != nil {
			return count{}, err
		}
		n += len(ids)
		if len(ids) < 200 {
			return count{N: n, Shown: true}, nil
		}
		after = ids[len(ids)-1]
	}
	return count{N: n, Capped: true, Shown: true}, ctx.Err()
}

// securityEvent reports whether e belongs on the overview's security list.
func securityEvent(e *storage.AuditEvent) bool {
	if e.Outcome != "" && e.Outcome != "success" {
		return true
	}
	switch e.Event {
	case "client.disabled", "client.deleted", "client.secret_rotated", "user.disabled", "user.password_reset",
		"apikey.revoke", "signing_key.revoked", "signing_key.rotated", "block.placed", "block.lifted",
		EventTOTPEnrolled:
		return true
	}
	return false
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	ctx := r.Context()
	svc := c.cfg.Service
	var d overviewData
	has := func(s string) bool { return slices.Contains(rc.user.AdminScopes, s) }
	var err error
	if has(apikeys.ScopeClientsRead) {
		d.Clients, err = countAll(ctx, func(after string) ([]string, error) {
			cs, err := svc.ListClients(ctx, storage.ListOptions{After: after, Limit: 200})
			ids := make([]string, len(cs))
			for i, c := range cs {
				ids[i] = c.ID
			}
			return ids, err
		})
		if err != nil {
			c.fail(w, r, rc, err)
			return
		}
	}
	if has(apikeys.ScopeUsers) {
		d.Users, err = countAll(ctx, func(after string) ([]string, error) {
			us, err := svc.ListUsers(ctx, storage.ListOptions{After: after, Limit: 200})
			ids := make([]string, len(us))
			for i, u := range us {
				ids[i] = u.ID
			}
			return ids, err
		})
		if err != nil {
			c.fail(w, r, rc, err)
			return
		}
	}
	if has(apikeys.ScopeAPIKeys) {
		// A console without API key management shows no figure rather
		// than failing the whole page.
		d.APIKeys, _ = countAll(ctx, func(after string) ([]string, error) {
			ks, err := svc.ListAPIKeys(ctx, storage.ListOptions{After: after, Limit: 200})
			ids := make([]string, len(ks))
			for i, k := range ks {
				ids[i] = k.ID
			}
			return ids, err
		})
	}
	if has(apikeys.ScopeAuditRead) {
		if err := c.activity(ctx, &d); err != nil {
			c.fail(w, r, rc, err)
			return
		}
		bs, err := svc.ListBlocks(ctx)
		if err != nil {
			c.fail(w, r, rc, err)
			return
		}
		d.Blocks = count{N: len(bs), Shown: true}
	}
	if has(apikeys.ScopeKeys) {
		ks, err := svc.ListSigningKeys(ctx)
		if err != nil {
			c.fail(w, r, rc, err)
			return
		}
		d.HasKeys, d.Keys = true, keyRows(ks)
	}
	c.render(w, http.StatusOK, "overview", rc.view("Overview", "overview", d))
}

// activity computes the last 24 hours from the audit trail: tokens issued,
// failed or refused operations, failed sign-ins, and the latest security
// events.
func (c *Console) activity(ctx context.Context, d *overviewData) error {
	d.HasActivity = true
	f := storage.AuditFilter{Since: c.cfg.Now().Add(-24 * time.Hour), Limit: 200}
	capped := true
	for range auditWindowPages {
		evs, err := c.cfg.Service.ListAudit(ctx, f)
		if err != nil {
			return err
		}
		for _, e := range evs {
			switch {
			case e.Event == "oauth.token.issued" && e.Outcome == "success":
				d.Issued.N++
			case e.Outcome != "" && e.Outcome != "success":
				d.Errors.N++
			}
			if (e.Event == "oauth.login" || e.Event == EventLogin) && e.Outcome == "failure" {
				d.Failed.N++
			}
			if len(d.Security) < recentSecurity && securityEvent(e) {
				d.Security = append(d.Security, e)
			}
		}
		if len(evs) < f.Limit {
			capped = false
			break
		}
		f.BeforeID = evs[len(evs)-1].ID
	}
	d.Issued.Capped, d.Errors.Capped, d.Failed.Capped = capped, capped, capped
	d.Issued.Shown, d.Errors.Shown, d.Failed.Shown = true, true, true
	return nil
}

type auditData struct {
	Events                             []*storage.AuditEvent
	Event, Actor, Client, Since, Until string
	// Older is the URL of the next (older) page, "" on the last. It is a
	// whole URL so html/template keeps its & and = as they are.
	Older string
	// Paged is true when this is not the newest page.
	Paged bool
	Reset string
}

// dateLayout is what <input type="datetime-local"> submits; times are UTC.
const dateLayout = "2006-01-02T15:04"

func (c *Console) auditList(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	q := r.URL.Query()
	d := auditData{
		Event: strings.TrimSpace(q.Get("event")), Actor: strings.TrimSpace(q.Get("actor")),
		Client: strings.TrimSpace(q.Get("client")), Since: q.Get("since"), Until: q.Get("until"),
	}
	const page = 50
	f := storage.AuditFilter{Event: d.Event, Actor: d.Actor, ClientID: d.Client, Limit: page + 1}
	var problems []storage.FieldProblem
	if d.Since != "" {
		t, err := time.Parse(dateLayout, d.Since)
		if err != nil {
			problems = append(problems, storage.FieldProblem{Field: "since", Problem: "must be a date and time"})
		}
		f.Since = t
	}
	if d.Until != "" {
		t, err := time.Parse(dateLayout, d.Until)
		if err != nil {
			problems = append(problems, storage.FieldProblem{Field: "until", Problem: "must be a date and time"})
		}
		f.Until = t
	}
	if b := q.Get("before"); b != "" {
		id, err := strconv.ParseInt(b, 10, 64)
		if err != nil || id <= 0 {
			problems = append(problems, storage.FieldProblem{Field: "before", Problem: "must be an event id"})
		}
		f.BeforeID = id
		d.Paged = true
	}
	if len(problems) > 0 {
		v := rc.view("Audit log", "audit", d)
		v.Problems, v.Error = problems, "The filter is invalid."
		c.render(w, http.StatusBadRequest, "audit", v)
		return
	}
	evs, err := c.cfg.Service.ListAudit(r.Context(), f)
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	d.Events = evs
	if len(evs) > page {
		d.Events = evs[:page]
		next := url.Values{}
		for k, v := range map[string]string{"event": d.Event, "actor": d.Actor, "client": d.Client, "since": d.Since, "until": d.Until} {
			if v != "" {
				next.Set(k, v)
			}
		}
		next.Set("before", strconv.FormatInt(evs[page-1].ID, 10))
		d.Older = Prefix + "/audit?" + next.Encode()
	}
	c.render(w, http.StatusOK, "audit", rc.view("Audit log", "audit", d))
}
