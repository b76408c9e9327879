package wire

import "fmt"

// Control OIDs used by the source.
const (
	OIDPaging      = "1.2.840.113556.1.4.319"
	OIDShowDeleted = "1.2.840.113556.1.4.417"
	OIDDirSync     = "1.2.840.113556.1.4.841"
	OIDSyncRequest = "1.3.6.1.4.1.4203.1.9.1.1"
	OIDSyncState   = "1.3.6.1.4.1.4203.1.9.1.2"
	OIDSyncDone    = "1.3.6.1.4.1.4203.1.9.1.3"
	OIDSyncInfo    = "1.3.6.1.4.1.4203.1.9.1.4"
	OIDManageDsaIT = "2.16.840.1.113730.3.4.2"
)

// Paging is the simple paged results control (RFC 2696) asking for size
// entries after cookie.
func Paging(size int, cookie []byte) Control {
	return Control{OID: OIDPaging, Critical: true, Value: tlvBytes(tagSequence, berInt(tagInteger, int64(size)), tlvBytes(tagOctetString, cookie))}
}

// PagingCookie reads the cookie of a paged results response control; an
// empty cookie means the last page was sent.
func PagingCookie(d *Done) ([]byte, error) {
	c := d.Control(OIDPaging)
	if c == nil {
		return nil, fmt.Errorf("search: the server did not return the paged results control")
	}
	seq, _, err := expect(c.Value, tagSequence, "paging control")
	if err != nil {
		return nil, err
	}
	_, rest, err := expect(seq, tagInteger, "paging size")
	if err != nil {
		return nil, err
	}
	cookie, _, err := expect(rest, tagOctetString, "paging cookie")
	return cookie, err
}

// ShowDeleted is Active Directory's show deleted objects control.
func ShowDeleted() Control { return Control{OID: OIDShowDeleted, Critical: true} }

// Sync request modes (RFC 4533).
const (
	SyncRefreshOnly       = 1
	SyncRefreshAndPersist = 3
)

// SyncRequest is the RFC 4533 sync request control.
func SyncRequest(mode int, cookie []byte, reloadHint bool) Control {
	parts := [][]byte{berInt(tagEnumerated, int64(mode))}
	if cookie != nil {
		parts = append(parts, tlvBytes(tagOctetString, cookie))
	}
	if reloadHint {
		parts = append(parts, berBool(true))
	}
	return Control{OID: OIDSyncRequest, Critical: true, Value: tlvBytes(tagSequence, parts...)}
}

// Sync states of an entry (RFC 4533 syncStateValue).
const (
	SyncPresent = 0
	SyncAdd     = 1
	SyncModify  = 2
	SyncDelete  = 3
)

// SyncState decodes an entry's syncStateValue. uuid and cookie alias value.
func SyncState(value []byte) (state int, uuid, cookie []byte, err error) {
	seq, _, err := expect(value, tagSequence, "sync state")
	if err != nil {
		return 0, nil, nil, err
	}
	sb, rest, err := expect(seq, tagEnumerated, "sync state value")
	if err != nil {
		return 0, nil, nil, err
	}
	st, err := parseInt(sb)
	if err != nil {
		return 0, nil, nil, err
	}
	uuid, rest, err = expect(rest, tagOctetString, "sync state uuid")
	if err != nil {
		return 0, nil, nil, err
	}
	if len(rest) > 0 {
		cookie, _, err = expect(rest, tagOctetString, "sync state cookie")
	}
	return int(st), uuid, cookie, err
}

// SyncDone decodes a syncDoneValue (from the SearchResultDone controls).
func SyncDone(value []byte) (cookie []byte, refreshDeletes bool, err error) {
	seq, _, err := expect(value, tagSequence, "sync done")
	if err != nil {
		return nil, false, err
	}
	for len(seq) > 0 {
		tag, v, r, err := tlv(seq)
		if err != nil {
			return nil, false, err
		}
		seq = r
		switch tag {
		case tagOctetString:
			cookie = v
		case tagBoolean:
			refreshDeletes = len(v) == 1 && v[0] != 0
		}
	}
	return cookie, refreshDeletes, nil
}

// SyncInfoKind says which syncInfoValue choice arrived.
type SyncInfoKind int

// syncInfoValue choices (RFC 4533).
const (
	InfoNewCookie      SyncInfoKind = 0
	InfoRefreshDelete  SyncInfoKind = 1
	InfoRefreshPresent SyncInfoKind = 2
	InfoIDSet          SyncInfoKind = 3
)

// SyncInfo is a decoded syncInfoValue. Slices alias the input.
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
func ParseSyncInfo(value []byte) (*SyncInfo, error) {
	tag, content, _, err := tlv(value)
	if err != nil {
		return nil, fmt.Errorf("sync info: %w", err)
	}
	si := &SyncInfo{Kind: SyncInfoKind(tag & 0x1f), RefreshDone: true}
	switch tag {
	case 0x80: // newcookie [0] syncCookie
		si.Cookie = content
		return si, nil
	case 0xa1, 0xa2: // refreshDelete / refreshPresent SEQUENCE
		for len(content) > 0 {
			t, v, r, err := tlv(content)
			if err != nil {
				return nil, err
			}
			content = r
			switch t {
			case tagOctetString:
				si.Cookie = v
			case tagBoolean:
				si.RefreshDone = len(v) == 1 && v[0] != 0
			}
		}
		return si, nil
	case 0xa3: // syncIdSet
		si.RefreshDone = false
		for len(content) > 0 {
			t, v, r, err := tlv(content)
			if err != nil {
				return nil, err
			}
			content = r
			switch t {
			case tagOctetString:
				si.Cookie = v
			case tagBoolean:
				si.RefreshDeletes = len(v) == 1 && v[0] != 0
			case tagSet:
				for len(v) > 0 {
					var u []byte
					if u, v, err = expect(v, tagOctetString, "sync uuid"); err != nil {
						return nil, err
					}
					si.UUIDs = append(si.UUIDs, u)
				}
			}
		}
		return si, nil
	}
	return nil, fmt.Errorf("sync info: unknown choice %#x", tag)
}

// DirSync flags (MS-ADTS 3.1.1.3.4.1.3).
const (
	DirSyncObjectSecurity       = 0x1
	DirSyncAncestorsFirstOrder  = 0x800
	DirSyncPublicDataOnly       = 0x2000
	DirSyncIncrementalValues    = 0x80000000
	DirSyncDefaultMaxBytes      = 1 << 20
	DirSyncMoreDataFlagInResult = 1
)

// DirSync is Active Directory's DirSync request control.
func DirSync(flags int64, maxBytes int, cookie []byte) Control {
	return Control{OID: OIDDirSync, Critical: true, Value: tlvBytes(tagSequence,
		berInt(tagInteger, flags), berInt(tagInteger, int64(maxBytes)), tlvBytes(tagOctetString, cookie))}
}

// DirSyncResponse decodes the DirSync response control: more is true when
// another call with the cookie returns more changes.
func DirSyncResponse(d *Done) (more bool, cookie []byte, err error) {
	c := d.Control(OIDDirSync)
	if c == nil {
		return false, nil, fmt.Errorf("search: the server did not return the DirSync control")
	}
	seq, _, err := expect(c.Value, tagSequence, "dirsync control")
	if err != nil {
		return false, nil, err
	}
	fb, rest, err := expect(seq, tagInteger, "dirsync flag")
	if err != nil {
		return false, nil, err
	}
	f, err := parseInt(fb)
	if err != nil {
		return false, nil, err
	}
	_, rest, err = expect(rest, tagInteger, "dirsync max length")
	if err != nil {
		return false, nil, err
	}
	cookie, _, err = expect(rest, tagOctetString, "dirsync cookie")
	return f != 0, cookie, err
}
