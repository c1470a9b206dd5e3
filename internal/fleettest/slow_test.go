package fleettest_test

import (
	"testing"

	"github.com/certfleet/certfleet/internal/fleettest"
	"github.com/certfleet/certfleet/storage"
	"github.com/certfleet/certfleet/storage/storagetest"
)

func TestSlowStorageHasExactlyTheOptionalInterfacesOfWhatItWraps(t *testing.T) {
	storagetest.CheckWrapper(t, func(inner storage.Storage) (storage.Storage, error) {
		return fleettest.NewSlowStorage(inner).Storage(), nil
	})
}
