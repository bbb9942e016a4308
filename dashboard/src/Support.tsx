import { useEffect, useRef, useState, type FormEvent } from "react";
import { useRoom, useTourcastClient } from "@tourcast/bindings/react";

/**
 * The support chat (`#/support/<room>`): the room's messages with their
 * sender and time, who is in the room (live presence), and an input that
 * publishes. Needs the `rooms` claim in `?token=`, or a gateway with
 * `--rooms-open` (the demo: room `support_demo`, where an agent posts now
 * and then).
 */
export default function Support({ room, search }: { room: string; search: string }) {
  const { messages, members, memberCount, publish, joined, status, error, queued } = useRoom(room);
  const client = useTourcastClient();
  const me = useMe();
  const [text, setText] = useState("");
  const [sendError, setSendError] = useState<string>();
  const list = useRef<HTMLOListElement>(null);

  // Keep the newest message in view.
  useEffect(() => {
    const el = list.current;
    if (el !== null) el.scrollTop = el.scrollHeight;
  }, [messages.length]);

  const submit = (event: FormEvent) => {
    event.preventDefault();
    const value = text.trim();
    if (value === "") return;
    setText("");
    setSendError(undefined);
    publish(value).catch((e: unknown) => {
      const code = typeof e === "object" && e !== null && "code" in e ? String((e as { code: unknown }).code) : "";
      setSendError(`${code === "" ? "" : `${code}: `}${e instanceof Error ? e.message : String(e)}`);
    });
  };

  return (
    <div className="page support">
      <header className="top">
        <h1>
          tourcast <span className="subtitle">support · {room}</span>
        </h1>
        <nav className="nav">
          <a href={`${search}#/`}>Availability</a>
        </nav>
      </header>

      {error !== undefined && (
        <p className="banner" role="alert" data-testid="room-error" data-code={error.code}>
          {error.code === "forbidden"
            ? "This room is not open to you: open this page with ?token=<a token whose rooms claim names it>, or run the gateway with --rooms-open (JWT off, trusted networks only)."
            : `The room is unavailable: ${error.message}`}
        </p>
      )}

      <div className="chat">
        <section className="messages-pane" aria-label="Messages">
          <p className="room-status" data-testid="room-status" data-status={status} data-joined={joined}>
            {joined ? "Joined" : status === "rejoining" ? "Reconnecting…" : "Joining…"}
            {queued > 0 && <> · {queued} waiting to be sent</>}
          </p>
          <ol className="messages" ref={list} data-testid="messages">
            {messages.map((m) => {
              const at = new Date(m.timestamp);
              const mine = me !== undefined && m.from.userId === me;
              return (
                <li
                  key={`${m.seq}`}
                  className={`message${mine ? " mine" : ""}`}
                  data-testid="message"
                  data-seq={m.seq}
                  data-from={m.from.userId}
                  data-message-id={m.messageId}
                >
                  <span className="from" title={m.from.userId}>
                    {mine ? "you" : short(m.from.userId)}
                  </span>
                  <time dateTime={m.timestamp} title={Number.isNaN(at.getTime()) ? m.timestamp : at.toLocaleString()}>
                    {Number.isNaN(at.getTime()) ? "" : at.toLocaleTimeString()}
                  </time>
                  <p className="text" data-testid="message-text">
                    {m.text}
                  </p>
                </li>
              );
            })}
          </ol>
          {messages.length === 0 && joined && (
            <p className="empty" data-testid="no-messages">
              No messages yet: say hello.
            </p>
          )}
          <form className="composer" onSubmit={submit}>
            <input
              data-testid="composer"
              aria-label="Message"
              placeholder={joined ? "Write a message…" : "Write a message (sent once connected)…"}
              value={text}
              maxLength={4096}
              onChange={(e) => setText(e.target.value)}
              disabled={error !== undefined}
            />
            <button type="submit" data-testid="send" disabled={error !== undefined || text.trim() === ""}>
              Send
            </button>
          </form>
          {sendError !== undefined && (
            <p className="banner" role="alert" data-testid="send-error">
              Not sent: {sendError}
            </p>
          )}
        </section>

        <aside className="members-pane" aria-label="Members">
          <h2>
            In the room <span data-testid="member-count">{memberCount}</span>
          </h2>
          <ul className="members" data-testid="members">
            {members.map((m) => (
              <li key={m.userId} data-testid="member" data-user-id={m.userId}>
                <span className="dot" aria-hidden="true" />
                <span title={m.userId}>{short(m.userId)}</span>
                {m.userId === me && <span className="dim you">(you)</span>}
              </li>
            ))}
          </ul>
          {memberCount > members.length && <p className="dim">and {memberCount - members.length} more</p>}
          <p className="dim" data-testid="client-id">
            {client === null ? "" : `connection ${client.state.clientId ?? "…"}`}
          </p>
        </aside>
      </div>
    </div>
  );
}

/** An anonymous member's id is a connection's UUID: its first block is enough to tell people apart. */
function short(userId: string): string {
  return /^[0-9a-f]{8}-[0-9a-f-]{27}$/i.test(userId) ? `guest ${userId.slice(0, 8)}` : userId;
}

/**
 * Who this page is in rooms: the token's `sub`, or, without a token, the
 * connection's `clientId` (which is what the gateway uses under
 * `--rooms-open`; it changes with every connection).
 */
function useMe(): string | undefined {
  const client = useTourcastClient();
  const [clientId, setClientId] = useState(client?.state.clientId);
  useEffect(() => {
    if (client === null) return;
    setClientId(client.state.clientId);
    return client.subscribeState((s) => setClientId(s.clientId));
  }, [client]);
  const token = new URLSearchParams(window.location.search).get("token");
  if (token !== null && token !== "") {
    try {
      const payload = JSON.parse(atob(token.split(".")[1]?.replace(/-/g, "+").replace(/_/g, "/") ?? "")) as { sub?: unknown };
      if (typeof payload.sub === "string") return payload.sub;
    } catch {
      // not a JWT we can read: fall back to the connection id
    }
  }
  return clientId;
}
