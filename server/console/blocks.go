package console

import (
	"errors"
	"net/http"
	"slices"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/storage"
)

// maxBlockValue bounds the value of a lift form. Client blocks name
// whatever client_id a caller sent, which the request limits cap at a few
// KiB; anything longer cannot name a block.
const maxBlockValue = 4096

// liftedMessage follows a lift. The Service lifts through the anomaly
// detector, which deletes the stored block, drops its own copy and
// notifies the other replicas.
const liftedMessage = "The block is lifted; every replica stops refusing the source within seconds."

type blocksData struct {
	Blocks []*storage.Block
}

func (c *Console) blockList(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	v := rc.view("Blocks", "blocks", nil)
	if r.URL.Query().Get("m") == "lifted" {
		v.Flash = liftedMessage
	}
	c.renderBlocks(w, r, rc, http.StatusOK, v)
}

// renderBlocks lists the blocks in force into v and renders the page. The
// lift handler (scope admin:users) also answers with it, so an admin who
// may lift but not list (admin:audit:read) gets v's message alone.
func (c *Console) renderBlocks(w http.ResponseWriter, r *http.Request, rc *reqCtx, status int, v view) {
	if !slices.Contains(rc.user.AdminScopes, apikeys.ScopeAuditRead) {
		v.Nav = ""
		if v.Flash != "" {
			status, v.Title = http.StatusOK, "Block lifted"
			v.Data = doneData{Message: v.Flash, Next: Prefix + "/", NextLabel: "Back to the overview"}
			v.Flash = ""
			c.render(w, status, "done", v)
			return
		}
		c.render(w, status, "error", v)
		return
	}
	bs, err := c.cfg.Service.ListBlocks(r.Context())
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	v.Data = blocksData{Blocks: bs}
	c.render(w, status, "blocks", v)
}

// blockLift lifts one block. Lifting gives a source its access back and is
// undone by the detector placing the block again, so it is a direct form
// without a confirmation step.
func (c *Console) blockLift(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	kind, value := r.PostForm.Get("kind"), r.PostForm.Get("value")
	var problems []storage.FieldProblem
	if kind != "ip" && kind != "client" {
		problems = append(problems, storage.FieldProblem{Field: "kind", Problem: "must be ip or client"})
	}
	switch {
	case value == "":
		problems = append(problems, storage.FieldProblem{Field: "value", Problem: "is required"})
	case len(value) > maxBlockValue:
		problems = append(problems, storage.FieldProblem{Field: "value", Problem: "is too long"})
	}
	if len(problems) > 0 {
		v := rc.view("Blocks", "blocks", nil)
		v.Error, v.Problems = "The lift request is invalid.", problems
		c.renderBlocks(w, r, rc, http.StatusBadRequest, v)
		return
	}
	err := c.cfg.Service.LiftBlock(r.Context(), rc.actor, kind, value)
	if errors.Is(err, storage.ErrNotFound) {
		// Blocks expire and other admins lift them too: show the list as
		// it is now rather than a bare error page.
		v := rc.view("Blocks", "blocks", nil)
		v.Error = "That source is not blocked: the block may have expired or been lifted already."
		c.renderBlocks(w, r, rc, http.StatusNotFound, v)
		return
	}
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	if !slices.Contains(rc.user.AdminScopes, apikeys.ScopeAuditRead) {
		v := rc.view("Blocks", "", nil)
		v.Flash = liftedMessage
		c.renderBlocks(w, r, rc, http.StatusOK, v)
		return
	}
	http.Redirect(w, r, Prefix+"/blocks?m=lifted", http.StatusSeeOther)
}
