package console

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/bulwark-auth/bulwark/server/admin"
	"github.com/bulwark-auth/bulwark/storage"
)

// registrationData is the initial access token page: the list and the
// issue form.
type registrationData struct {
	Tokens                   []*storage.InitialAccessToken
	Description, Scope       string
	MaxClients, ExpiresHours string
	now                      time.Time
}

// Status is t's status now: usable, revoked, expired or used up.
func (d registrationData) Status(t *storage.InitialAccessToken) string { return t.Status(d.now) }

func (c *Console) registrationView(r *http.Request, rc *reqCtx, d registrationData) (view, error) {
	ts, err := c.cfg.Service.ListInitialAccessTokens(r.Context(), storage.ListOptions{Limit: admin.MaxPageSize})
	if err != nil {
		return view{}, err
	}
	d.Tokens, d.now = ts, c.cfg.Now()
	return rc.view("Dynamic client registration", "registration", d), nil
}

func (c *Console) initialTokenList(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	v, err := c.registrationView(r, rc, registrationData{MaxClients: "1", ExpiresHours: "24"})
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	if r.URL.Query().Get("m") == "revoked" {
		v.Flash = "The initial access token registers no more clients. Clients it registered stay."
	}
	c.render(w, http.StatusOK, "registration", v)
}

func (c *Console) initialTokenCreate(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	f := r.PostForm
	d := registrationData{Description: strings.TrimSpace(f.Get("description")), Scope: f.Get("scope"),
		MaxClients: f.Get("max_clients"), ExpiresHours: f.Get("expires_hours")}
	var problems []storage.FieldProblem
	maxClients, err1 := strconv.Atoi(strings.TrimSpace(d.MaxClients))
	hours, err2 := strconv.Atoi(strings.TrimSpace(d.ExpiresHours))
	if err1 != nil {
		problems = append(problems, storage.FieldProblem{Field: "max_clients", Problem: "must be a whole number"})
	}
	if err2 != nil || hours < 1 {
		problems = append(problems, storage.FieldProblem{Field: "expires_in", Problem: "must be a whole number of hours"})
	}
	var (
		t     *storage.InitialAccessToken
		token string
		err   error
	)
	if len(problems) == 0 {
		t, token, err = c.cfg.Service.CreateInitialAccessToken(r.Context(), rc.actor, admin.InitialTokenInput{
			Description: d.Description, Scopes: strings.Fields(d.Scope), MaxClients: maxClients,
			ExpiresIn: storage.Duration(time.Duration(hours) * time.Hour),
		})
		problems, _ = invalidProblems(err)
	}
	if len(problems) > 0 {
		v, lerr := c.registrationView(r, rc, d)
		if lerr != nil {
			c.fail(w, r, rc, lerr)
			return
		}
		v.Problems, v.Error = problems, "The initial access token could not be issued. Fix the fields below."
		c.render(w, http.StatusBadRequest, "registration", v)
		return
	}
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	c.showSecret(w, rc, "registration", secretData{
		Kind: "initial access token", Label: "Initial access token", Value: token,
		Back: "Back to registration", BackTo: Prefix + "/registration",
		Details: []kv{{"Token ID", t.ID}, {"Clients it may register", strconv.Itoa(t.MaxClients)},
			{"Expires", t.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC")}},
	})
}

func (c *Console) initialTokenRevoke(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	if _, err := c.cfg.Service.RevokeInitialAccessToken(r.Context(), rc.actor, mux.Vars(r)["id"]); err != nil {
		c.fail(w, r, rc, err)
		return
	}
	http.Redirect(w, r, Prefix+"/registration?m=revoked", http.StatusSeeOther)
}
