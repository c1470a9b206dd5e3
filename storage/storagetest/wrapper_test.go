package storagetest

import (
	"testing"

	"github.com/certfleet/certfleet/storage"
)

func TestExposedWrapperIsExactForEveryCombination(t *testing.T) {
	CheckWrapper(t, func(inner storage.Storage) (storage.Storage, error) {
		return storage.Expose(storage.PassThrough{Storage: inner}), nil
	})
}

func TestCheckWrapperRejectsWrapperClaimingEveryInterface(t *testing.T) {
	claimsAll := func(inner storage.Storage) (storage.Storage, error) { return storage.PassThrough{Storage: inner}, nil }
	for mask := range uint(allOptional + 1) {
		errs := checkWrapper(mask, claimsAll)
		if mask == allOptional && len(errs) > 0 {
			t.Errorf("%s: a wrapper of a storage with every interface is exact, but CheckWrapper reports %v", comboName(mask), errs)
		}
		if mask != allOptional && len(errs) == 0 {
			t.Errorf("%s: CheckWrapper accepts a wrapper that claims every optional interface", comboName(mask))
		}
	}
}
