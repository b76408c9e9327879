package ldapsrc

// appendNormDN appends a comparison form of a DN to dst: ASCII lower-cased,
// without the spaces around unescaped separators (",", "+", "="). Servers
// return member values and entry DNs in the same form in practice; this
// absorbs case and spacing differences without a full DN parse per value.
func appendNormDN(dst, dn []byte) []byte {
	start := len(dst)
	escaped := false
	skipSpace := true
	for _, c := range dn {
		if escaped {
			escaped = false
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
			continue
		}
		switch c {
		case '\\':
			escaped = true
			skipSpace = false
			dst = append(dst, c)
			continue
		case ',', '+', '=':
			// trim spaces before the separator (unless escaped)
			for len(dst) > start && dst[len(dst)-1] == ' ' && !(len(dst)-1 > start && dst[len(dst)-2] == '\\') {
				dst = dst[:len(dst)-1]
			}
			dst = append(dst, c)
			skipSpace = true
			continue
		case ' ':
			if skipSpace {
				continue
			}
		}
		skipSpace = false
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	for len(dst) > start && dst[len(dst)-1] == ' ' && !(len(dst)-1 > start && dst[len(dst)-2] == '\\') {
		dst = dst[:len(dst)-1]
	}
	return dst
}

// normDN is appendNormDN into a new string.
func normDN(dn string) string { return string(appendNormDN(nil, []byte(dn))) }

// stripUniqueID removes the optional "#'0101'B" unique identifier of a
// uniqueMember (nameAndOptionalUID) value.
func stripUniqueID(v []byte) []byte {
	n := len(v)
	if n >= 4 && v[n-1] == 'B' && v[n-2] == '\'' {
		for i := n - 3; i > 0; i-- {
			if v[i] == '\'' {
				if v[i-1] == '#' {
					return v[:i-1]
				}
				break
			}
			if v[i] != '0' && v[i] != '1' {
				break
			}
		}
	}
	return v
}
