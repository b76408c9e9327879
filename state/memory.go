package state

import (
	"context"
	"errors"
	"fmt"
)

// ConnectorMemory keeps what one target's connector learnt about its
// application (connector.Memory) in a store's key-value bucket
// "connector/<target>", so that it survives restarts and is shared by the
// replicas.
type ConnectorMemory struct {
	store  Store
	bucket string
}

// NewConnectorMemory returns the memory of target in s.
func NewConnectorMemory(s Store, target string) *ConnectorMemory {
	return &ConnectorMemory{store: s, bucket: "connector/" + target}
}

// Recall returns the value kept under key, nil when there is none.
func (m *ConnectorMemory) Recall(ctx context.Context, key string) ([]byte, error) {
	v, _, err := m.store.KVGet(ctx, m.bucket, key)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: recall %s/%s: %w", m.bucket, key, err)
	}
	return v, nil
}

// Remember keeps val under key.
func (m *ConnectorMemory) Remember(ctx context.Context, key string, val []byte) error {
	if _, err := m.store.KVPut(ctx, m.bucket, key, val, -1); err != nil {
		return fmt.Errorf("state: remember %s/%s: %w", m.bucket, key, err)
	}
	return nil
}
