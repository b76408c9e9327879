package console

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dirsync/dirsync/report"
	"github.com/dirsync/dirsync/state"
	"go.uber.org/zap"
)

type ctxKey struct{}

// need wraps h so it runs only for a signed-in person with at least role;
// every POST must also carry the session's CSRF token.
func (s *Server) need(role int, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, ok := s.auth.current(r)
		if !ok {
			if r.Method == http.MethodGet {
				// The page asked for comes back after sign-in; a stale
				// cookie says why the session ended.
				v := url.Values{"next": {r.URL.RequestURI()}}
				if cookieID(r) != "" {
					v.Set("error", "ended")
					s.auth.clearCookie(w, sessionCookie)
				}
				http.Redirect(w, r, s.base.JoinPath("login").String()+"?"+v.Encode(), http.StatusFound)
				return
			}
			http.Error(w, "sign in first", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost {
			if !s.sameOrigin(r) {
				http.Error(w, "refused: the form was posted from another site", http.StatusForbidden)
				return
			}
			if err := r.ParseForm(); err != nil {
				http.Error(w, "bad form", http.StatusBadRequest)
				return
			}
			if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(sess.CSRF)) != 1 {
				s.o.Logger.Warn("console: form without a valid CSRF token refused", zap.String("path", r.URL.Path), zap.String("by", sess.Name))
				http.Error(w, "refused: the form's CSRF token is missing or wrong; reload the page", http.StatusForbidden)
				return
			}
		}
		if sess.Role < role {
			http.Error(w, "forbidden: this needs the "+roleName(role)+" role; you are a "+roleName(sess.Role), http.StatusForbidden)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, sess)))
	})
}

// sameOrigin checks the Origin header browsers send with a form post
// (when present) against the console's own origin: defence in depth on
// top of the CSRF token and SameSite cookies.
func (s *Server) sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	return strings.EqualFold(o, s.base.Scheme+"://"+s.base.Host)
}

func sessionOf(r *http.Request) session {
	s, _ := r.Context().Value(ctxKey{}).(session)
	return s
}

// page is what every template gets.
type page struct {
	Title   string
	Section string
	User    session
	Base    string
	Flash   string
	Error   string
	Data    any
	// Refresh, when set, is a meta refresh ("1", "0;url=...").
	Refresh string
}

func (p page) Approver() bool   { return p.User.Role >= roleApprover }
func (p page) RoleName() string { return roleName(p.User.Role) }

// render writes a page, refusing (500) any page that would contain a
// configured secret.
func (s *Server) render(w http.ResponseWriter, r *http.Request, name string, p page) {
	p.User = sessionOf(r)
	p.Base = s.base.Path
	var buf bytes.Buffer
	if err := s.tmpl[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		s.o.Logger.Error("console: render", zap.String("page", name), zap.Error(err))
		http.Error(w, "could not render the page", http.StatusInternalServerError)
		return
	}
	for _, sec := range s.secrets {
		if bytes.Contains(buf.Bytes(), []byte(sec)) || bytes.Contains(buf.Bytes(), []byte(template.HTMLEscapeString(sec))) {
			s.o.Logger.Error("console: a page would have shown a configured secret; refused", zap.String("page", name))
			http.Error(w, "refused: this page would have shown a secret", http.StatusInternalServerError)
			return
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

// fail answers 500 with a fixed message; the error itself goes to the
// log only (it can carry store keys and internal names). An unknown id is
// a 404.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, title string, err error) {
	if errors.Is(err, state.ErrNotFound) || errors.Is(err, ErrUnknown) {
		s.notFound(w, r, title)
		return
	}
	s.o.Logger.Warn("console: "+title, zap.Error(err))
	w.WriteHeader(http.StatusInternalServerError)
	s.render(w, r, "error", page{Title: title, Error: "This page could not be made; the daemon's log says why."})
}

// ErrUnknown is what a Backend returns (wrapped) for an id it does not know.
var ErrUnknown = errors.New("console: unknown id")

func (s *Server) notFound(w http.ResponseWriter, r *http.Request, title string) {
	w.WriteHeader(http.StatusNotFound)
	s.render(w, r, "error", page{Title: title, Error: "Not found: no such record (it may have been approved, discarded or aged out)."})
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.auth.current(r); ok {
		next := s.auth.safeNext(r.URL.Query().Get("next"))
		if next == "" {
			next = s.base.Path
		}
		http.Redirect(w, r, next, http.StatusFound)
		return
	}
	ls := s.auth.loginState(w, r)
	s.renderLogin(w, r, http.StatusOK, r.URL.Query().Get("error"), ls)
}

// renderLogin shows the sign-in page with the message of a fixed code.
func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, status int, code string, ls loginState) {
	oidcHref := s.base.JoinPath("login/oidc").String()
	if ls.Next != "" {
		oidcHref += "?" + url.Values{"next": {ls.Next}}.Encode()
	}
	if status != http.StatusOK {
		w.WriteHeader(status)
	}
	s.render(w, r, "login", page{Title: "Sign in", Error: signInErrors[code], Data: map[string]any{
		"OIDC": s.auth.oidcEnabled(), "OIDCHref": oidcHref, "Token": !s.o.Config.AdminToken.IsZero() && ls.CSRF != "", "CSRF": ls.CSRF}})
}

func (s *Server) callback(w http.ResponseWriter, r *http.Request) {
	client := clientKey(r)
	if s.auth.tries.blocked(client) {
		s.auth.tries.fail(client)
		s.renderLogin(w, r, http.StatusTooManyRequests, "throttled", loginState{})
		return
	}
	who, err := s.auth.finishOIDC(w, r)
	if err != nil {
		code := "failed"
		var se errSignIn
		if errors.As(err, &se) {
			code = se.code
		}
		s.auth.tries.fail(client)
		s.o.Logger.Warn("console: sign-in refused", zap.Error(err))
		s.renderLogin(w, r, http.StatusUnauthorized, code, loginState{})
		return
	}
	account := "account:" + who.Subject
	if s.auth.tries.blocked(account) {
		s.auth.tries.fail(client, account)
		s.renderLogin(w, r, http.StatusTooManyRequests, "throttled", loginState{})
		return
	}
	sess := session{Subject: who.Subject, Name: who.Name, Groups: who.Groups, Refresh: who.Refresh}
	if role := s.auth.roleFor(sess); role == roleNone {
		s.auth.tries.fail(client, account)
		s.o.Logger.Warn("console: sign-in without a console role", zap.String("who", who.Name))
		s.renderLogin(w, r, http.StatusForbidden, "role", loginState{})
		return
	}
	if err := s.auth.startSession(w, r, sess); err != nil {
		s.o.Logger.Error("console: sign-in", zap.Error(err))
		s.renderLogin(w, r, http.StatusInternalServerError, "failed", loginState{})
		return
	}
	s.o.Logger.Info("console: signed in", zap.String("who", who.Name), zap.String("role", roleName(s.auth.roleFor(sess))))
	next := who.Next
	if next == "" {
		next = s.base.Path
	}
	http.Redirect(w, r, next, http.StatusFound)
}

// tokenLogin signs in with the static admin token. Failures are throttled
// per client and for the one admin account, so guessing stops after a few
// tries even when the right token comes next.
func (s *Server) tokenLogin(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(loginCookie)
	var ls loginState
	if err != nil || !s.sameOrigin(r) || s.auth.open(c.Value, &ls) != nil || r.ParseForm() != nil ||
		subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(ls.CSRF)) != 1 {
		http.Error(w, "refused: the form's CSRF token is missing or wrong; reload the page", http.StatusForbidden)
		return
	}
	keys := []string{clientKey(r), "account:admin-token"}
	login := s.base.JoinPath("login").String()
	if s.auth.tries.blocked(keys...) {
		s.auth.tries.fail(keys...)
		s.o.Logger.Warn("console: admin-token sign-in refused: too many failures")
		http.Redirect(w, r, login+"?error=throttled", http.StatusSeeOther)
		return
	}
	if !s.auth.checkAdminToken(r.PostForm.Get("token")) {
		s.auth.tries.fail(keys...)
		s.o.Logger.Warn("console: wrong admin token")
		http.Redirect(w, r, login+"?error=token", http.StatusSeeOther)
		return
	}
	if err := s.auth.startSession(w, r, session{Subject: "admin-token", Name: "admin (static token)", Admin: true}); err != nil {
		s.o.Logger.Error("console: sign-in", zap.Error(err))
		http.Redirect(w, r, login+"?error=failed", http.StatusSeeOther)
		return
	}
	s.o.Logger.Warn("console: signed in with the static admin token; configure OIDC and remove it")
	s.auth.clearCookie(w, loginCookie)
	next := s.auth.safeNext(ls.Next)
	if next == "" {
		next = s.base.Path
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout ends the session in the store: the old cookie opens nothing.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if err := s.auth.ss.end(r.Context(), sessionOf(r).id); err != nil {
		s.o.Logger.Error("console: sign-out", zap.Error(err))
		http.Error(w, "sign-out failed: the session store cannot be reached", http.StatusServiceUnavailable)
		return
	}
	s.auth.clearCookie(w, sessionCookie)
	http.Redirect(w, r, s.base.JoinPath("login").String(), http.StatusSeeOther)
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	ov, err := s.o.Backend.Overview(r.Context())
	if err != nil {
		s.fail(w, r, "Overview", err)
		return
	}
	s.render(w, r, "overview", page{Title: "Overview", Section: "overview", Data: ov})
}

// runsPage is one page of the runs list.
type runsPage struct {
	Runs               []state.Run
	Since, Until       string
	Page, Pages, Total int
	PrevHref, NextHref string
}

// runsPerPage bounds the runs page.
const runsPerPage = 100

// parseWhen reads a date or a date and time (UTC) from a filter field.
func parseWhen(v string) (time.Time, bool) {
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02", time.RFC3339} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// runs lists the runs newest first, runsPerPage a page, filtered by when
// they started (since, until: a date or a date and time, UTC).
func (s *Server) runs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	v := runsPage{Since: q.Get("since"), Until: q.Get("until"), Page: 1}
	var since, until time.Time
	ok := true
	if v.Since != "" {
		since, ok = parseWhen(v.Since)
	}
	if v.Until != "" && ok {
		until, ok = parseWhen(v.Until)
		if ok && len(v.Until) == len("2006-01-02") {
			until = until.Add(24 * time.Hour) // a date means through that day
		}
	}
	if !ok {
		w.WriteHeader(http.StatusBadRequest)
		s.render(w, r, "error", page{Title: "Runs", Error: "since and until: give a date (YYYY-MM-DD) or a date and time (YYYY-MM-DDTHH:MM, UTC)."})
		return
	}
	if n, err := strconv.Atoi(q.Get("page")); err == nil && n > 1 {
		v.Page = n
	}
	all, err := s.o.Backend.Runs(r.Context(), 0)
	if err != nil {
		s.fail(w, r, "Runs", err)
		return
	}
	var runs []state.Run
	for _, run := range all {
		if (!since.IsZero() && run.Started.Before(since)) || (!until.IsZero() && !run.Started.Before(until)) {
			continue
		}
		runs = append(runs, run)
	}
	v.Total = len(runs)
	v.Pages = max(1, (len(runs)+runsPerPage-1)/runsPerPage)
	v.Page = min(v.Page, v.Pages)
	lo := (v.Page - 1) * runsPerPage
	v.Runs = runs[lo:min(lo+runsPerPage, len(runs))]
	link := func(p int) string {
		u := url.Values{"page": {strconv.Itoa(p)}}
		if v.Since != "" {
			u.Set("since", v.Since)
		}
		if v.Until != "" {
			u.Set("until", v.Until)
		}
		return s.base.JoinPath("runs").String() + "?" + u.Encode()
	}
	if v.Page > 1 {
		v.PrevHref = link(v.Page - 1)
	}
	if v.Page < v.Pages {
		v.NextHref = link(v.Page + 1)
	}
	s.render(w, r, "runs", page{Title: "Runs", Section: "runs", Data: v})
}

// runView is one run with its filtered decisions.
type runView struct {
	Run       state.Run
	Decisions []state.Decision
	Filter    map[string]string
	Targets   []string
	Actions   []string
	Outcomes  []string
	// Matched counts the decisions the filter matched; at most maxRows are shown.
	Matched int
}

// maxRows bounds a run page: a first sync can decide for every account.
const maxRows = 2000

func (s *Server) run(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	run, err := s.o.Backend.Run(r.Context(), id)
	if err != nil {
		s.fail(w, r, "Run "+id, err)
		return
	}
	ds, err := s.o.Backend.Decisions(r.Context(), state.DecisionQuery{RunID: id})
	if err != nil {
		s.fail(w, r, "Run "+id, err)
		return
	}
	q := r.URL.Query()
	v := runView{Run: run, Filter: map[string]string{"target": q.Get("target"), "action": q.Get("action"), "outcome": q.Get("outcome"), "user": q.Get("user")}}
	for _, d := range ds {
		v.Targets = appendUnique(v.Targets, d.Target)
		v.Actions = appendUnique(v.Actions, d.Action)
		v.Outcomes = appendUnique(v.Outcomes, d.Outcome)
		if f := v.Filter["target"]; f != "" && d.Target != f {
			continue
		}
		if f := v.Filter["action"]; f != "" && d.Action != f {
			continue
		}
		if f := v.Filter["outcome"]; f != "" && d.Outcome != f {
			continue
		}
		if f := v.Filter["user"]; f != "" && !strings.Contains(strings.ToLower(d.User), strings.ToLower(f)) {
			continue
		}
		v.Matched++
		if len(v.Decisions) < maxRows {
			v.Decisions = append(v.Decisions, d)
		}
	}
	slices.Sort(v.Targets)
	slices.Sort(v.Actions)
	slices.Sort(v.Outcomes)
	s.render(w, r, "run", page{Title: "Run " + id, Section: "runs", Data: v})
}

func appendUnique(xs []string, x string) []string {
	if slices.Contains(xs, x) {
		return xs
	}
	return append(xs, x)
}

func (s *Server) heldList(w http.ResponseWriter, r *http.Request) {
	hs, err := s.o.Backend.HeldPlans(r.Context())
	if err != nil {
		s.fail(w, r, "Held plans", err)
		return
	}
	s.render(w, r, "heldlist", page{Title: "Held plans", Section: "held", Flash: r.URL.Query().Get("done"), Data: hs})
}

// heldView is one held plan re-checked now.
type heldView struct {
	Now     time.Time
	Held    Held
	Actions []string // the kinds of action held, for "approve only"
	Wanted  int
}

func (s *Server) held(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	h, err := s.o.Backend.Recheck(r.Context(), id)
	if err != nil {
		s.fail(w, r, "Held plan "+id, err)
		return
	}
	v := heldView{Held: h, Now: s.o.Now()}
	for _, st := range h.Steps {
		v.Actions = appendUnique(v.Actions, st.Action)
		if st.Wanted {
			v.Wanted++
		}
	}
	slices.Sort(v.Actions)
	s.render(w, r, "held", page{Title: "Held plan " + id, Section: "held", Data: v})
}

func (s *Server) approve(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	by := sessionOf(r).Name
	only := r.PostForm["only"]
	s.o.Logger.Info("console: approve", zap.String("run_id", id), zap.String("by", by), zap.Strings("only", only))
	res, err := s.o.Backend.Approve(r.Context(), id, only, by)
	if err != nil {
		s.fail(w, r, "Approve "+id, err)
		return
	}
	if res.RunID == "" {
		http.Redirect(w, r, s.base.JoinPath("held", id, "approval").String(), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, s.base.JoinPath("runs", res.RunID).String(), http.StatusSeeOther)
}

// approval shows how far an approval running in the background got; the
// page reloads itself every second (no script: a meta refresh) and goes
// to the approval's run when it is done.
func (s *Server) approval(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ap, err := s.o.Backend.Approval(r.Context(), id)
	if err != nil {
		s.fail(w, r, "Approval of "+id, err)
		return
	}
	p := page{Title: "Approving " + id, Section: "held", Data: struct {
		Approval
		Now time.Time
	}{ap, s.o.Now()}}
	switch {
	case ap.Finished.IsZero():
		p.Refresh = "1"
	case ap.Err == "" && ap.RunID != "":
		p.Refresh = "0;url=" + s.base.JoinPath("runs", ap.RunID).String()
	}
	s.render(w, r, "approval", p)
}

func (s *Server) discard(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	by := sessionOf(r).Name
	s.o.Logger.Info("console: discard", zap.String("run_id", id), zap.String("by", by))
	if err := s.o.Backend.Discard(r.Context(), id, by); err != nil {
		s.fail(w, r, "Discard "+id, err)
		return
	}
	http.Redirect(w, r, s.base.JoinPath("held").String()+"?done=discarded+"+id, http.StatusSeeOther)
}

// maxMatches bounds the person search's list.
const maxMatches = 50

func firstNonEmpty(xs ...string) string {
	for _, x := range xs {
		if x != "" {
			return x
		}
	}
	return ""
}

// personView is the person page.
type personView struct {
	Matches   []PersonMatch
	More      bool
	Query     string
	Found     []Explanation
	Decisions []state.Decision
}

func (s *Server) person(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	v := personView{Query: q}
	if q != "" {
		xs, err := s.o.Backend.Explain(r.Context(), q)
		if err != nil {
			s.fail(w, r, "Person", err)
			return
		}
		if len(xs) == 0 {
			// Not a key, username or email: search names and prefixes;
			// one match is explained at once.
			ms, err := s.o.Backend.FindPeople(r.Context(), q, maxMatches+1)
			if err != nil {
				s.fail(w, r, "Person", err)
				return
			}
			if len(ms) == 1 {
				q = firstNonEmpty(ms[0].Email, ms[0].Username, ms[0].Key)
				if xs, err = s.o.Backend.Explain(r.Context(), q); err != nil {
					s.fail(w, r, "Person", err)
					return
				}
			} else {
				v.More = len(ms) > maxMatches
				v.Matches = ms[:min(len(ms), maxMatches)]
			}
		}
		v.Found = xs
		names := map[string]bool{q: true}
		for _, x := range xs {
			if x.User != nil {
				names[x.User.Username] = true
			}
			if x.Cached != nil && x.Cached.Username != "" {
				names[x.Cached.Username] = true
			}
			if x.Desired != nil && x.Desired.Username != "" {
				names[x.Desired.Username] = true
			}
		}
		for n := range names {
			ds, err := s.o.Backend.Decisions(r.Context(), state.DecisionQuery{User: n, Limit: 200})
			if err != nil {
				s.fail(w, r, "Person", err)
				return
			}
			v.Decisions = append(v.Decisions, ds...)
		}
		slices.SortFunc(v.Decisions, func(a, b state.Decision) int { return b.Time.Compare(a.Time) })
	}
	s.render(w, r, "person", page{Title: "Person", Section: "person", Data: v})
}

// leavers shows the offboarding evidence since ?since= (a date; default
// the last 7 days); /ui/leavers.csv downloads it.
func (s *Server) leavers(w http.ResponseWriter, r *http.Request) {
	since := s.o.Now().UTC().AddDate(0, 0, -7).Truncate(24 * time.Hour)
	if v := r.URL.Query().Get("since"); v != "" {
		t, err := time.Parse("2006-01-02", v)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			s.render(w, r, "error", page{Title: "Leavers", Error: "since: give a date as YYYY-MM-DD."})
			return
		}
		since = t
	}
	rep, err := s.o.Backend.Leavers(r.Context(), since)
	if err != nil {
		s.fail(w, r, "Leavers", err)
		return
	}
	if strings.HasSuffix(r.URL.Path, ".csv") {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="leavers-since-`+since.Format("2006-01-02")+`.csv"`)
		var buf bytes.Buffer
		if err := report.WriteLeaversCSV(&buf, rep); err != nil {
			s.fail(w, r, "Leavers", err)
			return
		}
		for _, sec := range s.secrets {
			if bytes.Contains(buf.Bytes(), []byte(sec)) {
				http.Error(w, "refused: this page would have shown a secret", http.StatusInternalServerError)
				return
			}
		}
		_, _ = w.Write(buf.Bytes())
		return
	}
	s.render(w, r, "leavers", page{Title: "Leavers", Section: "leavers", Data: map[string]any{"Since": since.Format("2006-01-02"), "R": rep}})
}

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return now.Sub(t).Round(time.Second).String() + " ago"
	},
	"timep": func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format("2006-01-02")
	},
	"join": strings.Join,
	"secs": func(x float64) string {
		return time.Duration(x * float64(time.Second)).Round(time.Millisecond).String()
	},
}

func parseTemplates() (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for _, n := range []string{"login", "error", "overview", "runs", "run", "heldlist", "held", "person", "leavers", "approval"} {
		t, err := template.New(n).Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/"+n+".html")
		if err != nil {
			return nil, err
		}
		out[n] = t
	}
	return out, nil
}
