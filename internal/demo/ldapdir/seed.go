package ldapdir

import (
	"strconv"
	"time"
)

// The people the demo relies on (uids). See the package documentation.
const (
	// DisabledUser is locked (pwdAccountLockedTime) from the start.
	DisabledUser = "victor.hale"
	// ExpiringUser is a contractor whose account expires (shadowExpire)
	// ExpiryDays after the seed's clock.
	ExpiringUser = "ines.moreau"
	// MustChangeUser is a new hire who must change their password (pwdReset).
	MustChangeUser = "omar.haddad"
	// AdminUser is in it-admins, hence in netmaker-admins and vpn-users.
	AdminUser = "grace.okafor"
	// DemoLeaver is an active engineer the demo disables.
	DemoLeaver = "sam.rivera"
	// ExpiryDays is how far ExpiringUser's expiry lies after the seed's clock.
	ExpiryDays = 7
)

// Group names (cn) of the seed.
const (
	GroupStaff          = "staff"           // ⊃ engineering, sales, it-admins, plus the office
	GroupEngineering    = "engineering"     //
	GroupSales          = "sales"           //
	GroupITAdmins       = "it-admins"       // the admin group
	GroupVPNUsers       = "vpn-users"       // ⊃ engineering, it-admins, plus a few
	GroupPrinting       = "printing"        // ⊃ staff (two levels of nesting), plus one contractor
	GroupNetmakerAdmins = "netmaker-admins" // ⊃ it-admins, plus the platform lead
	GroupContractors    = "contractors"     // not staff
)

// UserDN is the DN of the seeded person uid.
func UserDN(uid string) string { return "uid=" + uid + "," + PeopleDN }

// GroupDN is the DN of the seeded group cn.
func GroupDN(cn string) string { return "cn=" + cn + "," + GroupsDN }

// seedPerson is one row of the seed's staff list.
type seedPerson struct {
	uid, given, sn, title, group string
}

// seedPeople lists the company, by primary group.
func seedPeople() []seedPerson {
	return []seedPerson{
		// Engineering.
		{DemoLeaver, "Sam", "Rivera", "Software Engineer", GroupEngineering},
		{MustChangeUser, "Omar", "Haddad", "Software Engineer", GroupEngineering},
		{"priya.natarajan", "Priya", "Natarajan", "Platform Lead", GroupEngineering},
		{"lukas.becker", "Lukas", "Becker", "Senior Engineer", GroupEngineering},
		{"mei.lin", "Mei", "Lin", "Engineering Manager", GroupEngineering},
		{"daniel.okoye", "Daniel", "Okoye", "Site Reliability Engineer", GroupEngineering},
		{"sofia.rossi", "Sofia", "Rossi", "Frontend Engineer", GroupEngineering},
		{"jonas.lindqvist", "Jonas", "Lindqvist", "Backend Engineer", GroupEngineering},
		{"aisha.bello", "Aisha", "Bello", "Data Engineer", GroupEngineering},
		{"tomas.novak", "Tomáš", "Novák", "QA Engineer", GroupEngineering},
		{"hannah.schmidt", "Hannah", "Schmidt", "Security Engineer", GroupEngineering},
		{"kenji.watanabe", "Kenji", "Watanabe", "Mobile Engineer", GroupEngineering},
		{"lucia.fernandez", "Lucía", "Fernández", "Product Designer", GroupEngineering},
		{"noah.campbell", "Noah", "Campbell", "Backend Engineer", GroupEngineering},
		{"fatima.zahra", "Fatima", "Zahra", "Machine Learning Engineer", GroupEngineering},
		{"ravi.kumar", "Ravi", "Kumar", "Staff Engineer", GroupEngineering},
		{"erik.andersson", "Erik", "Andersson", "DevOps Engineer", GroupEngineering},
		{"leila.karimi", "Leila", "Karimi", "Frontend Engineer", GroupEngineering},
		{"ben.thompson", "Ben", "Thompson", "Support Engineer", GroupEngineering},
		{"amara.nwosu", "Amara", "Nwosu", "Product Manager", GroupEngineering},
		// Sales.
		{DisabledUser, "Victor", "Hale", "Account Executive", GroupSales},
		{"emma.johansson", "Emma", "Johansson", "Head of Sales", GroupSales},
		{"carlos.mendes", "Carlos", "Mendes", "Sales Engineer", GroupSales},
		{"olivia.brown", "Olivia", "Brown", "Account Executive", GroupSales},
		{"ahmed.hassan", "Ahmed", "Hassan", "Account Manager", GroupSales},
		{"chloe.dubois", "Chloé", "Dubois", "Sales Development Rep", GroupSales},
		{"marco.bianchi", "Marco", "Bianchi", "Account Executive", GroupSales},
		{"julia.nowak", "Julia", "Nowak", "Customer Success Manager", GroupSales},
		{"liam.oconnor", "Liam", "O'Connor", "Account Manager", GroupSales},
		{"zoe.papadopoulos", "Zoe", "Papadopoulos", "Sales Operations", GroupSales},
		{"rosa.martinez", "Rosa", "Martínez", "Partner Manager", GroupSales},
		{"george.white", "George", "White", "Sales Development Rep", GroupSales},
		// IT.
		{AdminUser, "Grace", "Okafor", "IT Manager", GroupITAdmins},
		{"mateo.garcia", "Mateo", "García", "Systems Administrator", GroupITAdmins},
		{"anna.kowalski", "Anna", "Kowalski", "Network Administrator", GroupITAdmins},
		{"yusuf.demir", "Yusuf", "Demir", "IT Support Specialist", GroupITAdmins},
		// The office: staff directly.
		{"elena.petrova", "Elena", "Petrova", "Chief Executive Officer", GroupStaff},
		{"david.cohen", "David", "Cohen", "Chief Financial Officer", GroupStaff},
		{"sarah.mitchell", "Sarah", "Mitchell", "Head of People", GroupStaff},
		{"ngozi.adeyemi", "Ngozi", "Adeyemi", "Accountant", GroupStaff},
		{"pierre.laurent", "Pierre", "Laurent", "Operations Manager", GroupStaff},
		{"isabel.santos", "Isabel", "Santos", "Office Manager", GroupStaff},
		{"martin.keller", "Martin", "Keller", "Legal Counsel", GroupStaff},
		{"laura.evans", "Laura", "Evans", "People Partner", GroupStaff},
		{"kwame.mensah", "Kwame", "Mensah", "Financial Analyst", GroupStaff},
		{"yuki.tanaka", "Yuki", "Tanaka", "Marketing Manager", GroupStaff},
		// Contractors.
		{ExpiringUser, "Inès", "Moreau", "Contract Developer", GroupContractors},
		{"felix.wagner", "Felix", "Wagner", "Contract Developer", GroupContractors},
		{"nadia.rahman", "Nadia", "Rahman", "Contract Designer", GroupContractors},
		{"oscar.lind", "Oscar", "Lind", "Contract Tester", GroupContractors},
		{"bianca.costa", "Bianca", "Costa", "Contract Illustrator", GroupContractors},
	}
}

// DemoSeed returns the demo company: the suffix, ou=people with 51
// people, and ou=groups with 8 groups. now fixes ExpiringUser's expiry
// (ExpiryDays after now's day); everything else is the same on every
// call, entryUUIDs included (Start derives them from the DNs).
func DemoSeed(now time.Time) []Entry {
	out := []Entry{
		{DN: BaseDN, Attrs: []Attr{
			{Name: "objectClass", Values: []string{"top", "dcObject", "organization"}},
			{Name: "dc", Values: []string{"demo"}},
			{Name: "o", Values: []string{"Demo Company"}},
		}},
		ou("people", "People"),
		ou("groups", "Groups"),
	}
	expire := strconv.FormatInt(now.UTC().Unix()/86400+ExpiryDays, 10)
	members := map[string][]string{}
	for i, p := range seedPeople() {
		cn := p.given + " " + p.sn
		employee := strconv.Itoa(1001 + i)
		if p.group == GroupContractors {
			employee = "C" + employee
		}
		attrs := []Attr{
			{Name: "objectClass", Values: []string{"top", "person", "organizationalPerson", "inetOrgPerson", "posixAccount", "shadowAccount"}},
			{Name: "uid", Values: []string{p.uid}},
			{Name: "cn", Values: []string{cn}},
			{Name: "givenName", Values: []string{p.given}},
			{Name: "sn", Values: []string{p.sn}},
			{Name: "displayName", Values: []string{cn}},
			{Name: "mail", Values: []string{p.uid + "@" + MailDomain}},
			{Name: "employeeNumber", Values: []string{employee}},
			{Name: "title", Values: []string{p.title}},
			{Name: "uidNumber", Values: []string{strconv.Itoa(10001 + i)}},
			{Name: "gidNumber", Values: []string{"10000"}},
			{Name: "homeDirectory", Values: []string{"/home/" + p.uid}},
			{Name: "loginShell", Values: []string{"/bin/bash"}},
		}
		switch p.uid {
		case DisabledUser:
			attrs = append(attrs, Attr{Name: "pwdAccountLockedTime", Values: []string{LockedTime}})
		case ExpiringUser:
			attrs = append(attrs, Attr{Name: "shadowExpire", Values: []string{expire}})
		case MustChangeUser:
			attrs = append(attrs, Attr{Name: "pwdReset", Values: []string{"TRUE"}})
		}
		out = append(out, Entry{DN: UserDN(p.uid), Attrs: attrs})
		members[p.group] = append(members[p.group], UserDN(p.uid))
	}
	nest := func(group string, extra ...string) []string {
		return append(extra, members[group]...)
	}
	groups := []struct {
		cn, description string
		members         []string
	}{
		{GroupStaff, "Everyone employed: engineering, sales and IT by nesting, and the office",
			nest(GroupStaff, GroupDN(GroupEngineering), GroupDN(GroupSales), GroupDN(GroupITAdmins))},
		{GroupEngineering, "Product engineering", members[GroupEngineering]},
		{GroupSales, "Sales and customer success", members[GroupSales]},
		{GroupITAdmins, "IT administrators", members[GroupITAdmins]},
		{GroupVPNUsers, "May connect to the VPN",
			[]string{GroupDN(GroupEngineering), GroupDN(GroupITAdmins), UserDN("emma.johansson"), UserDN("carlos.mendes"),
				UserDN("felix.wagner"), UserDN("nadia.rahman"), UserDN(ExpiringUser)}},
		{GroupPrinting, "May print (ezeep)", []string{GroupDN(GroupStaff), UserDN("bianca.costa")}},
		{GroupNetmakerAdmins, "Netmaker administrators", []string{GroupDN(GroupITAdmins), UserDN("priya.natarajan")}},
		{GroupContractors, "External contractors", members[GroupContractors]},
	}
	for _, g := range groups {
		out = append(out, Entry{DN: GroupDN(g.cn), Attrs: []Attr{
			{Name: "objectClass", Values: []string{"top", "groupOfNames"}},
			{Name: "cn", Values: []string{g.cn}},
			{Name: "description", Values: []string{g.description}},
			{Name: "member", Values: g.members},
		}})
	}
	return out
}

func ou(name, description string) Entry {
	return Entry{DN: "ou=" + name + "," + BaseDN, Attrs: []Attr{
		{Name: "objectClass", Values: []string{"top", "organizationalUnit"}},
		{Name: "ou", Values: []string{name}},
		{Name: "description", Values: []string{description}},
	}}
}
