package storage_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/certfleet/certfleet/storage"
)

func TestIsTransientIOError(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("syntax error"), false},
		{fs.ErrNotExist, false},
		{fmt.Errorf("load: %w", fs.ErrNotExist), false},
		{storage.TransientIOError(fs.ErrNotExist), false},
		{storage.ErrLockLost, false},
		{context.Canceled, false},
		{context.DeadlineExceeded, false},
		{storage.TransientIOError(errors.New("serialization failure")), true},
		{fmt.Errorf("store: %w", storage.TransientIOError(errors.New("failover"))), true},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, true},
		{fmt.Errorf("write: %w", syscall.EPIPE), true},
		{io.ErrUnexpectedEOF, true},
		{timeoutError{}, true},
	}
	for _, tt := range tests {
		if got := storage.IsTransientIOError(tt.err); got != tt.want {
			t.Errorf("IsTransientIOError(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func TestRetryPolicyRetriesTransientErrorsOnly(t *testing.T) {
	blip := storage.TransientIOError(errors.New("connection blip"))
	denied := errors.New("permission denied")
	tests := []struct {
		name      string
		errs      []error // returned by successive attempts; nil after the list
		wantCalls int
		wantErr   error
	}{
		{"success", nil, 1, nil},
		{"one blip", []error{blip}, 2, nil},
		{"three blips", []error{blip, blip, blip}, 4, nil},
		{"blips beyond attempts", []error{blip, blip, blip, blip, blip}, 4, blip},
		{"not found is final", []error{fmt.Errorf("load: %w", fs.ErrNotExist)}, 1, fs.ErrNotExist},
		{"lost lock is final", []error{storage.ErrLockLost}, 1, storage.ErrLockLost},
		{"permanent error", []error{denied, blip}, 1, denied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := storage.RetryPolicy{BaseDelay: time.Microsecond, MaxDelay: time.Millisecond}.Do(context.Background(), func(context.Context) error {
				calls++
				if calls <= len(tt.errs) {
					return tt.errs[calls-1]
				}
				return nil
			})
			if calls != tt.wantCalls {
				t.Errorf("op called %d times, want %d", calls, tt.wantCalls)
			}
			if (tt.wantErr == nil && err != nil) || !errors.Is(err, tt.wantErr) {
				t.Errorf("Do = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestRetryPolicyStopsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	blip := storage.TransientIOError(errors.New("blip"))
	err := storage.RetryPolicy{MaxAttempts: 100, BaseDelay: time.Hour, MaxDelay: time.Hour}.Do(ctx, func(context.Context) error {
		calls++
		cancel() // the backoff that follows must end with the context, not after an hour
		return blip
	})
	if calls != 1 || !errors.Is(err, blip) {
		t.Errorf("Do = %v after %d calls, want the last error after 1 call", err, calls)
	}
}

func TestRetryPolicyUsesCustomClassifier(t *testing.T) {
	busy := errors.New("database is busy")
	calls := 0
	err := storage.RetryPolicy{BaseDelay: time.Microsecond, Transient: func(err error) bool { return errors.Is(err, busy) }}.Do(context.Background(), func(context.Context) error {
		calls++
		if calls == 1 {
			return busy
		}
		return nil
	})
	if err != nil || calls != 2 {
		t.Errorf("Do = %v after %d calls, want nil after 2", err, calls)
	}
}
