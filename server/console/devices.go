package console

import (
	"net/http"

	"github.com/bulwark-auth/bulwark/storage"
)

type devicesData struct {
	Devices []*storage.DeviceAuthorization
}

// deviceList shows the device authorizations (RFC 8628) that have not
// expired: which client asked, the first half of the user code (enough to
// match what a user reads out, not enough to use), when, and where each
// stands. Codes themselves are never stored.
func (c *Console) deviceList(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	ds, err := c.cfg.Service.ListDeviceAuthorizations(r.Context())
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	c.render(w, http.StatusOK, "devices", rc.view("Device authorizations", "devices", devicesData{Devices: ds}))
}
