package nats

import (
	"bytes"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/wait"
)

func TestLargeValueIsChunkedAndItsChunksGoWhenReplaced(t *testing.T) {
	s := newTestStorage(t)
	ctx := testCtx(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), (3*s.chunk)/16+1)
	if err := s.Store(ctx, "big/*.example.com.crt", big); err != nil {
		t.Fatal(err)
	}
	chunks, err := s.subjects(ctx, "c.>", 0)
	if err != nil || len(chunks) < 3 {
		t.Fatalf("a %d-byte value with %d-byte messages left chunks %v, %v", len(big), s.chunk, chunks, err)
	}
	if got, err := s.Load(ctx, "big/*.example.com.crt"); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("Load of the chunked value: %d bytes, %v", len(got), err)
	}
	if err := s.Store(ctx, "big/*.example.com.crt", []byte("small")); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "the replaced value's chunks to be deleted", func() bool {
		left, err := s.subjects(ctx, "c.>", 0)
		return err == nil && len(left) == 0
	})
	if info, err := s.Stat(ctx, "big/*.example.com.crt"); err != nil || info.Size != 5 {
		t.Fatalf("Stat after the replacement = %+v, %v", info, err)
	}
}
