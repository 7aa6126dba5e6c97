package main

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chrome is a tab of headless Chromium with the steps browser tests take;
// each step fails the test when it fails.
type chrome struct {
	t   *testing.T
	ctx context.Context
}

// newChrome starts Chromium (bin, see chromiumBinary) for at most timeout;
// it is closed when the test ends.
func newChrome(t *testing.T, bin string, timeout time.Duration) *chrome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	actx, acancel := chromedp.NewExecAllocator(ctx, chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()))
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		bcancel()
		acancel()
		cancel()
	})
	return &chrome{t: t, ctx: bctx}
}

// do runs actions as one named step.
func (c *chrome) do(step string, actions ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	if err := chromedp.Do(c.ctx, actions...); err != nil {
		c.t.Fatalf("%s: %v", step, err)
	}
}

// submit clicks sel and waits for the page it leads to.
func (c *chrome) submit(step string, sel chromedp.CSS) {
	c.t.Helper()
	if _, err := chromedp.RunResponse(c.ctx, chromedp.Click(sel)); err != nil {
		c.t.Fatalf("%s: %v", step, err)
	}
}

// text returns the text of the first node sel matches.
func (c *chrome) text(sel chromedp.CSS) string {
	c.t.Helper()
	s, err := chromedp.Run(c.ctx, chromedp.Text(sel))
	if err != nil {
		c.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}
