package console

import (
	"cmp"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/gorilla/mux"

	"github.com/bulwark-auth/bulwark/storage"
)

// keyRow is one signing key with what the timeline shows.
type keyRow struct {
	*storage.SigningKey
	// Since is when the key entered its current state.
	Since time.Time
	// Until is the next scheduled change of the key (activation of a next
	// key, removal of a retired one), zero when none is known.
	Until time.Time
}

// algSummary is one algorithm's current and upcoming key.
type algSummary struct {
	Alg          string
	Active       string
	ActiveSince  time.Time
	NextRotation time.Time
}

type keysData struct {
	Algs []algSummary
	Keys []keyRow
}

func keyRows(ks []*storage.SigningKey) keysData {
	var d keysData
	order := map[storage.KeyState]int{storage.KeyActive: 0, storage.KeyNext: 1, storage.KeyRetired: 2, storage.KeyRevoked: 3}
	slices.SortFunc(ks, func(a, b *storage.SigningKey) int {
		if c := cmp.Compare(a.Algorithm, b.Algorithm); c != 0 {
			return c
		}
		if c := cmp.Compare(order[a.State], order[b.State]); c != 0 {
			return c
		}
		return b.CreatedAt.Compare(a.CreatedAt)
	})
	algs := map[string]*algSummary{}
	for _, k := range ks {
		row := keyRow{SigningKey: k, Since: k.CreatedAt}
		s := algs[k.Algorithm]
		if s == nil {
			s = &algSummary{Alg: k.Algorithm}
			algs[k.Algorithm] = s
		}
		switch k.State {
		case storage.KeyActive:
			row.Since = k.ActivatedAt
			if s.Active == "" {
				s.Active, s.ActiveSince = k.KID, k.ActivatedAt
			}
		case storage.KeyNext:
			row.Until = k.ActivateAt
			if s.NextRotation.IsZero() || k.ActivateAt.Before(s.NextRotation) {
				s.NextRotation = k.ActivateAt
			}
		case storage.KeyRetired:
			row.Since, row.Until = k.RetiredAt, k.DeleteAfter
		case storage.KeyRevoked:
			row.Since = k.RevokedAt
		}
		d.Keys = append(d.Keys, row)
	}
	for _, s := range algs {
		d.Algs = append(d.Algs, *s)
	}
	slices.SortFunc(d.Algs, func(a, b algSummary) int { return cmp.Compare(a.Alg, b.Alg) })
	return d
}

func (c *Console) keyList(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	ks, err := c.cfg.Service.ListSigningKeys(r.Context())
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	d := keyRows(ks)
	// Algorithms configured but without any key yet still get a row.
	for _, alg := range c.cfg.Service.SigningKeyAlgorithms() {
		if !slices.ContainsFunc(d.Algs, func(s algSummary) bool { return s.Alg == alg }) {
			d.Algs = append(d.Algs, algSummary{Alg: alg})
		}
	}
	v := rc.view("Signing keys", "keys", d)
	switch r.URL.Query().Get("m") {
	case "rotated":
		v.Flash = "Rotated: the published next key is now signing and a new next key was created."
	case "revoked":
		v.Flash = "The key is revoked and gone from the JWKS; tokens it signed no longer validate."
	}
	c.render(w, http.StatusOK, "keys", v)
}

func (c *Console) keyRotate(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	if err := c.cfg.Service.RotateSigningKey(r.Context(), rc.actor, r.PostForm.Get("alg")); err != nil {
		c.fail(w, r, rc, err)
		return
	}
	http.Redirect(w, r, Prefix+"/keys?m=rotated", http.StatusSeeOther)
}

func (c *Console) findKey(r *http.Request) (*storage.SigningKey, error) {
	kid := mux.Vars(r)["kid"]
	ks, err := c.cfg.Service.ListSigningKeys(r.Context())
	if err != nil {
		return nil, err
	}
	for _, k := range ks {
		if k.KID == kid {
			return k, nil
		}
	}
	return nil, storage.ErrNotFound
}

func (c *Console) keyRevokeConfirm(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	k, err := c.findKey(r)
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	msg := "The key leaves the JWKS at once and every token it signed stops validating. Use this when the key may be compromised."
	if k.State == storage.KeyActive {
		msg += " It is the active key: the next key takes over signing."
	}
	c.render(w, http.StatusOK, "confirm", rc.view("Revoke signing key?", "keys", confirmData{
		Action: Prefix + "/keys/" + url.PathEscape(k.KID) + "/revoke", Verb: "Revoke key now",
		Message: msg, Object: k.Algorithm + " key " + k.KID + " (" + string(k.State) + ")",
		Cancel: Prefix + "/keys", Danger: true,
	}))
}

func (c *Console) keyRevoke(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	if err := c.cfg.Service.RevokeSigningKey(r.Context(), rc.actor, mux.Vars(r)["kid"]); err != nil {
		c.fail(w, r, rc, err)
		return
	}
	http.Redirect(w, r, Prefix+"/keys?m=revoked", http.StatusSeeOther)
}
