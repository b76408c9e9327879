package wire

import (
	"errors"
	"fmt"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// Controls are encoded and decoded by go-ldap (which fuzzes its decoders);
// this package only frames them. Our own BER code is kept for the hot path
// (messages and entries).

// Control OIDs used by the source.
const (
	OIDPaging       = ldap.ControlTypePaging
	OIDShowDeleted  = ldap.ControlTypeMicrosoftShowDeleted
	OIDNotification = ldap.ControlTypeMicrosoftNotification
	OIDDirSync      = ldap.ControlTypeDirSync
	OIDSyncRequest  = ldap.ControlTypeSyncRequest
	OIDSyncState    = ldap.ControlTypeSyncState
	OIDSyncDone     = ldap.ControlTypeSyncDone
	OIDSyncInfo     = ldap.ControlTypeSyncInfo
	OIDManageDsaIT  = ldap.ControlTypeManageDsaIT
)

// fromLDAP turns a go-ldap request control into a Control.
func fromLDAP(c ldap.Control) Control {
	cs, err := parseControls(nil, c.Encode().Bytes())
	if err != nil || len(cs) != 1 {
		// go-ldap's encoders are fixed code: a failure here is a bug.
		panic(fmt.Sprintf("wire: go-ldap encoded control %s unreadably: %v", c.GetControlType(), err))
	}
	return cs[0]
}

// decode decodes a response control with go-ldap. A panic in the decoder
// (bytes from the network) becomes an error.
func decode(c *Control) (ctl ldap.Control, err error) {
	defer func() {
		if r := recover(); r != nil {
			ctl, err = nil, fmt.Errorf("control %s: malformed (decoder panic: %v)", c.OID, r)
		}
	}()
	parts := [][]byte{berString(tagOctetString, c.OID)}
	if c.Critical {
		parts = append(parts, berBool(true))
	}
	if c.Value != nil {
		parts = append(parts, tlvBytes(tagOctetString, c.Value))
	}
	pkt, err := ber.DecodePacketErr(tlvBytes(tagSequence, parts...))
	if err != nil {
		return nil, fmt.Errorf("control %s: %w", c.OID, err)
	}
	ctl, err = ldap.DecodeControl(pkt)
	if err != nil {
		return nil, fmt.Errorf("control %s: %w", c.OID, err)
	}
	return ctl, nil
}

// decodeAs decodes c and checks the decoded type.
func decodeAs[T ldap.Control](c *Control) (T, error) {
	var zero T
	ctl, err := decode(c)
	if err != nil {
		return zero, err
	}
	t, ok := ctl.(T)
	if !ok {
		return zero, fmt.Errorf("control %s: decoded as %T", c.OID, ctl)
	}
	return t, nil
}

// Paging is the simple paged results control (RFC 2696) asking for size
// entries after cookie.
func Paging(size int, cookie []byte) Control {
	p := ldap.NewControlPaging(uint32(max(size, 0)))
	p.SetCookie(cookie)
	c := fromLDAP(p)
	c.Critical = true
	return c
}

// PagingCookie reads the cookie of a paged results response control; an
// empty cookie means the last page was sent.
func PagingCookie(d *Done) ([]byte, error) {
	c := d.Control(OIDPaging)
	if c == nil {
		return nil, errors.New("search: the server did not return the paged results control")
	}
	p, err := decodeAs[*ldap.ControlPaging](c)
	if err != nil {
		return nil, fmt.Errorf("paging: %w", err)
	}
	return p.Cookie, nil
}

// ShowDeleted is Active Directory's show deleted objects control.
func ShowDeleted() Control {
	c := fromLDAP(ldap.NewControlMicrosoftShowDeleted())
	c.Critical = true
	return c
}

// Notification is Active Directory's change notification control
// (LDAP_SERVER_NOTIFICATION_OID): the search never ends and returns each
// object in scope when it changes. It must be critical.
func Notification() Control {
	c := fromLDAP(ldap.NewControlMicrosoftNotification())
	c.Critical = true
	return c
}

// Sync request modes (RFC 4533).
const (
	SyncRefreshOnly       = int(ldap.SyncRequestModeRefreshOnly)
	SyncRefreshAndPersist = int(ldap.SyncRequestModeRefreshAndPersist)
)

// SyncRequest is the RFC 4533 sync request control.
func SyncRequest(mode int, cookie []byte, reloadHint bool) Control {
	return fromLDAP(ldap.NewControlSyncRequest(ldap.ControlSyncRequestMode(mode), cookie, reloadHint))
}

// Sync states of an entry (RFC 4533 syncStateValue).
const (
	SyncPresent = int(ldap.SyncStatePresent)
	SyncAdd     = int(ldap.SyncStateAdd)
	SyncModify  = int(ldap.SyncStateModify)
	SyncDelete  = int(ldap.SyncStateDelete)
)

// SyncState decodes an entry's Sync State control.
func SyncState(c *Control) (state int, uuid, cookie []byte, err error) {
	s, err := decodeAs[*ldap.ControlSyncState](c)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("sync state: %w", err)
	}
	if s.State < ldap.SyncStatePresent || s.State > ldap.SyncStateDelete {
		return 0, nil, nil, fmt.Errorf("sync state: unknown state %d", s.State)
	}
	return int(s.State), s.EntryUUID[:], s.Cookie, nil
}

// SyncDone decodes a Sync Done control (from the SearchResultDone).
func SyncDone(c *Control) (cookie []byte, refreshDeletes bool, err error) {
	s, err := decodeAs[*ldap.ControlSyncDone](c)
	if err != nil {
		return nil, false, fmt.Errorf("sync done: %w", err)
	}
	return s.Cookie, s.RefreshDeletes, nil
}

// SyncInfoKind says which syncInfoValue choice arrived.
type SyncInfoKind int

// syncInfoValue choices (RFC 4533).
const (
	InfoNewCookie      = SyncInfoKind(ldap.SyncInfoNewcookie)
	InfoRefreshDelete  = SyncInfoKind(ldap.SyncInfoRefreshDelete)
	InfoRefreshPresent = SyncInfoKind(ldap.SyncInfoRefreshPresent)
	InfoIDSet          = SyncInfoKind(ldap.SyncInfoSyncIdSet)
)

// SyncInfo is a decoded syncInfoValue.
type SyncInfo struct {
	Kind SyncInfoKind
	// Cookie is the new cookie, if any.
	Cookie []byte
	// RefreshDone ends the refresh phase (refreshDelete/refreshPresent).
	RefreshDone bool
	// RefreshDeletes: for InfoIDSet, the UUIDs are deletes (else present).
	RefreshDeletes bool
	UUIDs          [][]byte
}

// ParseSyncInfo decodes the value of a syncInfo intermediate response.
func ParseSyncInfo(value []byte) (si *SyncInfo, err error) {
	defer func() {
		if r := recover(); r != nil {
			si, err = nil, fmt.Errorf("sync info: malformed (decoder panic: %v)", r)
		}
	}()
	pkt, err := ber.DecodePacketErr(value)
	if err != nil {
		return nil, fmt.Errorf("sync info: %w", err)
	}
	if pkt.ClassType != ber.ClassContext {
		return nil, fmt.Errorf("sync info: unexpected tag %#x", value[0])
	}
	c, err := ldap.NewControlSyncInfo(pkt)
	if err != nil {
		return nil, fmt.Errorf("sync info: %w", err)
	}
	si = &SyncInfo{Kind: SyncInfoKind(c.Value)}
	switch {
	case c.NewCookie != nil:
		// go-ldap reads ByteValue, which asn1-ber leaves empty for a
		// context-class primitive: the cookie is in Data.
		si.Cookie, si.RefreshDone = pkt.Data.Bytes(), true
		if pkt.TagType != ber.TypePrimitive {
			return nil, errors.New("sync info: newcookie is not primitive")
		}
	case c.RefreshDelete != nil:
		si.Cookie, si.RefreshDone = c.RefreshDelete.Cookie, c.RefreshDelete.RefreshDone
	case c.RefreshPresent != nil:
		si.Cookie, si.RefreshDone = c.RefreshPresent.Cookie, c.RefreshPresent.RefreshDone
	case c.SyncIdSet != nil:
		si.Cookie, si.RefreshDeletes = c.SyncIdSet.Cookie, c.SyncIdSet.RefreshDeletes
		for _, u := range c.SyncIdSet.SyncUUIDs {
			si.UUIDs = append(si.UUIDs, append([]byte(nil), u[:]...))
		}
	default:
		return nil, errors.New("sync info: empty")
	}
	return si, nil
}

// DirSync flags (MS-ADTS 3.1.1.3.4.1.3).
const (
	DirSyncObjectSecurity      = ldap.DirSyncObjectSecurity
	DirSyncAncestorsFirstOrder = ldap.DirSyncAncestorsFirstOrder
	DirSyncPublicDataOnly      = ldap.DirSyncPublicDataOnly
	DirSyncIncrementalValues   = ldap.DirSyncIncrementalValues
	DirSyncDefaultMaxBytes     = 1 << 20
)

// DirSync is Active Directory's DirSync request control.
func DirSync(flags int64, maxBytes int, cookie []byte) Control {
	return fromLDAP(ldap.NewRequestControlDirSync(flags, int64(maxBytes), cookie))
}

// DirSyncResponse decodes the DirSync response control: more is true when
// another call with the cookie returns more changes.
func DirSyncResponse(d *Done) (more bool, cookie []byte, err error) {
	c := d.Control(OIDDirSync)
	if c == nil {
		return false, nil, errors.New("search: the server did not return the DirSync control")
	}
	ds, err := decodeAs[*ldap.ControlDirSync](c)
	if err != nil {
		return false, nil, fmt.Errorf("dirsync: %w", err)
	}
	return ds.Flags != 0, ds.Cookie, nil
}
