package audit

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/winkk/passport/authn"
)

// OnChange records the event a state change of authn means, if it means one (authn.Config.OnChange). Wire
// it before anything can change: Passport's records change only through authn.
func (l *Log) OnChange(ctx context.Context, c authn.Change) {
	for _, e := range eventsOf(ctx, c) {
		l.Record(ctx, e)
	}
}

// eventsOf is what change c means to the audit log: none, one or (a login answered from a session: started
// and succeeded) two events.
func eventsOf(ctx context.Context, c authn.Change) []Event {
	switch c.Table {
	case authn.TableLogin:
		return loginEvents(ctx, c)
	case authn.TableSession:
		if s, ok := c.Before.(authn.Session); ok && c.Op == authn.OpDelete {
			return []Event{{Type: SessionEnded, Email: s.Email, DeviceID: s.Device, Outcome: OutcomeSuccess,
				Details: map[string]any{"session_id": s.ID}}}
		}
	case authn.TableDevice:
		return deviceEvents(c)
	case authn.TableInvitation:
		if inv, ok := c.After.(authn.Invitation); ok && c.Op == authn.OpCreate {
			e := Event{Type: InvitationCreated, Email: inv.Email, Outcome: OutcomeSuccess,
				Details: map[string]any{"expires_at": inv.ExpiresAt}}
			if inv.InvitedBy != "" { // a phone inviting its user's next phone
				e.DeviceID, e.Details["invited_by"] = inv.InvitedBy, inv.InvitedBy
			}
			return []Event{e}
		}
	case authn.TableApp:
		return appEvents(c)
	case authn.TableUser:
		return userEvents(c)
	case authn.TableKeys:
		kind, sum, ok := authn.KeyChange(c)
		switch {
		case ok && kind == "staged":
			return []Event{{Type: KeyStaged, Outcome: OutcomeSuccess, Details: map[string]any{"certificate_sha256": sum}}}
		case ok && kind == "activated":
			return []Event{{Type: KeyActivated, Outcome: OutcomeSuccess, Details: map[string]any{"certificate_sha256": sum}}}
		}
	}
	return nil
}

// loginEvents: a login's steps. Every login event names the browser (client_ip, user_agent) of the login;
// the phone's address, when it acted, goes in details.phone_ip.
func loginEvents(ctx context.Context, c authn.Change) []Event {
	after, ok := c.After.(authn.Login)
	if !ok {
		return nil
	}
	e := Event{Email: after.Email, AppID: after.AppID, ClientIP: after.ClientIP, UserAgent: after.UserAgent,
		Details: map[string]any{"login_id": after.ID}}
	if after.Email != "" {
		e.Actor = "user:" + after.Email
	}
	if c.Op == authn.OpCreate {
		started := e
		started.Type, started.Outcome = LoginStarted, OutcomeSuccess
		started.Details = with(e.Details, "idp_initiated", after.RequestID == "")
		if after.State == authn.StateApproved { // answered from the browser's IdP session, no push
			started.Details = with(started.Details, "session_id", after.SessionID)
		}
		return []Event{started}
	}
	before, _ := c.Before.(authn.Login)
	if before.State == after.State {
		return nil
	}
	if after.AnsweredBy != "" && before.AnsweredBy == "" {
		e.DeviceID, e.Actor = after.AnsweredBy, "device:"+after.AnsweredBy
		// A code typed in the browser comes from the browser's address, not the phone's.
		if r := requestOf(ctx); r.ip != "" && after.Method != authn.MethodOfflineCode {
			e.Details["phone_ip"] = r.ip
		}
		if after.Receipt != "" {
			e.Details["receipt"] = after.Receipt
			e.Details["receipt_body"] = after.ReceiptBody
		}
	}
	e.Reason = after.Reason
	switch after.State {
	case authn.StatePending:
		if after.Decoy { // an account that cannot be asked: nothing is pushed, and the login can only expire
			e.Type, e.Outcome = LoginFailed, OutcomeFailure
			e.Details["network"] = after.Network
			return []Event{e}
		}
		e.Type, e.Outcome, e.Reason = LoginPushed, OutcomeSuccess, ""
		e.Details["devices"], e.Details["network"] = len(after.Devices), after.Network
	case authn.StatePaused:
		e.Type, e.Outcome = LoginPaused, OutcomeFailure
		e.Details["paused_until"], e.Details["network"] = after.PausedUntil, after.Network
	case authn.StateFailed:
		e.Type, e.Outcome = LoginFailed, OutcomeFailure
	case authn.StateApproved:
		method := after.Method
		if method == "" {
			method = authn.MethodPush
		}
		e.Type, e.Outcome = LoginApproved, OutcomeSuccess
		e.Details["method"] = method
	case authn.StateDenied:
		e.Type, e.Outcome = LoginDenied, OutcomeFailure
		if after.Reason == authn.ReasonReported {
			e.Type = LoginReported
			e.Details["network"] = after.Network
		}
	case authn.StateExpired:
		e.Type, e.Outcome, e.Actor = LoginExpired, OutcomeFailure, ActorSystem
	case authn.StateAnswered:
		e.Type, e.Outcome, e.Reason = LoginSucceeded, OutcomeSuccess, ""
		e.Details["session_id"] = after.SessionID
		if before.State == authn.StateApproved && before.AnsweredBy == "" {
			e.Details["from_session"] = true
		}
	default:
		return nil
	}
	return []Event{e}
}

// deviceEvents: a phone enrolled or removed (other changes — last seen, push token — are not events).
func deviceEvents(c authn.Change) []Event {
	switch c.Op {
	case authn.OpCreate:
		d, ok := c.After.(authn.Device)
		if !ok {
			return nil
		}
		e := Event{Type: DeviceEnrolled, Email: d.Email, DeviceID: d.ID, Outcome: OutcomeSuccess,
			Details: map[string]any{"name": d.Name, "platform": d.Platform}}
		if d.InvitedBy != "" {
			e.Details["invited_by"] = d.InvitedBy
		}
		return []Event{e}
	case authn.OpDelete:
		e := Event{Type: DeviceRemoved, DeviceID: c.ID, Outcome: OutcomeSuccess}
		if d, ok := c.Before.(authn.Device); ok {
			e.Email, e.Details = d.Email, map[string]any{"name": d.Name}
		}
		return []Event{e}
	}
	return nil
}

// appEvents: every administrator's change to an application, with the fields it changed.
func appEvents(c authn.Change) []Event {
	e := Event{AppID: c.ID, Outcome: OutcomeSuccess}
	switch c.Op {
	case authn.OpCreate:
		e.Type = AppCreated
		if a, ok := c.After.(authn.App); ok {
			e.Details = map[string]any{"name": a.Name}
		}
	case authn.OpUpdate:
		e.Type = AppUpdated
		if a, ok := c.After.(authn.App); ok {
			e.Details = map[string]any{"name": a.Name, "changed": changedFields(c.Before, c.After)}
		}
	case authn.OpDelete:
		e.Type = AppDeleted
		if a, ok := c.Before.(authn.App); ok {
			e.Details = map[string]any{"name": a.Name}
		}
	}
	return []Event{e}
}

// userEvents: every change to a user, with the fields it changed.
func userEvents(c authn.Change) []Event {
	e := Event{Email: c.ID, Outcome: OutcomeSuccess}
	switch c.Op {
	case authn.OpCreate:
		e.Type = UserCreated
	case authn.OpUpdate:
		changed := changedFields(c.Before, c.After)
		if len(changed) == 0 {
			return nil
		}
		e.Type, e.Details = UserUpdated, map[string]any{"changed": changed}
		if u, ok := c.After.(authn.User); ok && slices.Contains(changed, "status") {
			e.Details["status"] = u.Status
		}
	case authn.OpDelete:
		e.Type = UserDeleted
	}
	return []Event{e}
}

// changedFields lists the JSON fields whose values differ between before and after (records of one type),
// leaving out when they were changed.
func changedFields(before, after any) []string {
	if before == nil {
		return nil
	}
	var b, a map[string]json.RawMessage
	bb, _ := json.Marshal(before)
	ab, _ := json.Marshal(after)
	if json.Unmarshal(bb, &b) != nil || json.Unmarshal(ab, &a) != nil {
		return nil
	}
	var out []string
	for k, v := range a {
		if k != "updated_at" && string(b[k]) != string(v) {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// with returns details with k set to v.
func with(details map[string]any, k string, v any) map[string]any {
	out := make(map[string]any, len(details)+1)
	for dk, dv := range details {
		out[dk] = dv
	}
	out[k] = v
	return out
}
