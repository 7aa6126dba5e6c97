package admin

import (
	"context"
	"fmt"

	"github.com/bulwark-auth/bulwark/storage"
)

// maxDeviceList bounds the console's list of device authorizations.
const maxDeviceList = 500

// ListDeviceAuthorizations returns the unexpired device authorizations
// (RFC 8628), newest first: pending ones waiting for their user, and
// those answered or used but not yet expired.
func (s *Service) ListDeviceAuthorizations(ctx context.Context) ([]*storage.DeviceAuthorization, error) {
	ds, err := s.store.ListDeviceAuthorizations(ctx, s.now(), maxDeviceList)
	if err != nil {
		return nil, fmt.Errorf("admin: list device authorizations: %w", err)
	}
	return ds, nil
}
