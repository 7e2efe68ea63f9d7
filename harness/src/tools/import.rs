//! packetdrill import: the connect path of a packetdrill script as a tcptwin case.
//!
//! packetdrill scripts interleave system calls and packets on one time line. A tcptwin case
//! says the same thing another way: the calls are `steps`, the outbound packets are what the
//! DUT does by itself (checked by `expect`), and each inbound packet is the peer's reaction to
//! the SYN before it (`peer.syn`), or, after the handshake, its `established` script.
//!
//! The subset translated: `socket`, `setsockopt`, `getsockopt`, `bind`, `connect`, `fcntl`,
//! `poll`, `close`, `write`/`send`, `read`/`recv`; outbound SYNs (their count and spacing
//! become `expect.syn`) and other outbound segments (produced by the DUT on its own);
//! inbound SYN-ACK, RST and ICMP errors answering a SYN, and inbound data/FIN/RST after the
//! handshake; `set_sysctls.py` lines for `net.` sysctls. Anything else is refused with its
//! line number and the reason, never silently dropped. The result is parsed with the case
//! loader before it is returned, so what comes out always loads.

use std::fmt::Write as _;
use std::path::Path;

/// A script that cannot be translated: where, and why.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}:{line}: cannot translate `{text}`: {why}")]
    Line {
        path: String,
        line: usize,
        text: String,
        why: String,
    },
    #[error("{path}: {why}")]
    Script { path: String, why: String },
}

/// What the peer does with one SYN, in YAML.
#[derive(Debug, Clone)]
struct Reaction {
    yaml: String,
}

#[derive(Debug, Default)]
struct Builder {
    description: Vec<String>,
    sysctls: Vec<(String, String)>,
    steps: Vec<String>,
    calls: Vec<String>,
    call_counts: std::collections::BTreeMap<&'static str, usize>,
    /// Time (s) of each outbound SYN.
    syn_times: Vec<f64>,
    /// The reaction to each SYN, by its index.
    reactions: Vec<Option<Reaction>>,
    established: Vec<String>,
    handshake_done: bool,
    dut_fin_sent: bool,
    on_fin: Option<&'static str>,
    socket_seen: bool,
    /// When the last system call returned (s): a later call starts after a pause.
    last_call_end: f64,
    /// The time of the last event, for relative times.
    now: f64,
    /// The time of the last established-state peer action.
    last_peer_action: Option<f64>,
    dropped: Vec<String>,
}

struct Ctx<'a> {
    path: &'a str,
    line: usize,
    text: &'a str,
}

impl Ctx<'_> {
    fn refuse(&self, why: impl Into<String>) -> ImportError {
        ImportError::Line {
            path: self.path.to_string(),
            line: self.line,
            text: self.text.trim().to_string(),
            why: why.into(),
        }
    }
}

/// Translates a packetdrill script into case YAML. `path` names the script in errors and
/// gives the case its name.
pub fn translate(path: &Path, text: &str) -> Result<String, ImportError> {
    let shown = path.display().to_string();
    let mut b = Builder::default();
    let mut leading_comments = true;
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let raw = lines[i];
        let number = i + 1;
        i += 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix("//") {
            if leading_comments {
                let c = comment.trim().trim_start_matches('/').trim();
                if !c.is_empty() && !c.starts_with('`') {
                    b.description.push(c.to_string());
                }
            }
            continue;
        }
        leading_comments = false;
        let code = strip_comment(trimmed);
        let ctx = Ctx {
            path: &shown,
            line: number,
            text: raw,
        };
        // A shell command in backticks, possibly over several lines.
        if let Some(after) = code.strip_prefix('`') {
            let mut command = after.to_string();
            let mut end = command.find('`');
            while end.is_none() && i < lines.len() {
                command.push('\n');
                command.push_str(lines[i]);
                i += 1;
                end = command.find('`');
            }
            let Some(end) = end else {
                return Err(ctx.refuse("unterminated shell command"));
            };
            shell(&mut b, &ctx, &command[..end])?;
            continue;
        }
        if code.contains("%{") {
            return Err(ctx.refuse(
                "a Python assertion on tcp_info: tcptwin checks frames and call results, not tcp_info",
            ));
        }
        let (time, rest) = split_time(&ctx, code, b.now)?;
        b.now = time.0;
        let rest = rest.trim();
        if let Some(packet) = rest.strip_prefix('>') {
            outbound(&mut b, &ctx, time.0, packet.trim())?;
        } else if let Some(packet) = rest.strip_prefix('<') {
            inbound(&mut b, &ctx, time.0, packet.trim())?;
        } else {
            syscall(&mut b, &ctx, time, rest)?;
        }
    }
    b.finish(path)
}

/// Drops a trailing `// comment`.
fn strip_comment(line: &str) -> &str {
    match line.find("//") {
        Some(p) => line[..p].trim_end(),
        None => line,
    }
}

/// The leading time: `0`, `0.100`, `+0`, `+.1`, `+1`, or a range `+.1...0.200` (a blocking
/// call's start, and its end in absolute seconds). Returns (start, end) and the rest.
fn split_time<'a>(
    ctx: &Ctx,
    code: &'a str,
    now: f64,
) -> Result<((f64, f64), &'a str), ImportError> {
    let end = code
        .find(|c: char| c.is_whitespace())
        .ok_or_else(|| ctx.refuse("no event after the time"))?;
    let (stamp, rest) = code.split_at(end);
    let one = |s: &str, base: f64| -> Result<f64, ImportError> {
        let (relative, number) = match s.strip_prefix('+') {
            Some(n) => (true, n),
            None => (false, s),
        };
        let value: f64 = number
            .parse()
            .map_err(|_| ctx.refuse(format!("`{s}` is not a packetdrill time")))?;
        Ok(if relative { base + value } else { value })
    };
    let (start, end) = match stamp.split_once("...") {
        Some((a, b)) => {
            let start = one(a, now)?;
            (start, one(b, start)?)
        }
        None => {
            let t = one(stamp, now)?;
            (t, t)
        }
    };
    Ok(((start, end), rest))
}

fn shell(b: &mut Builder, ctx: &Ctx, command: &str) -> Result<(), ImportError> {
    let words: Vec<&str> = command.split_whitespace().collect();
    let mut k = 0;
    while k < words.len() {
        let w = words[k];
        k += 1;
        if w.ends_with("defaults.sh") {
            b.dropped.push(
                "packetdrill's defaults.sh (its sysctl defaults; the case keeps a new namespace's)"
                    .into(),
            );
        } else if w.ends_with("set_sysctls.py") {
            while k < words.len() && words[k].starts_with("/proc/sys/") {
                let (key, value) = words[k]
                    .trim_start_matches("/proc/sys/")
                    .split_once('=')
                    .ok_or_else(|| ctx.refuse(format!("`{}` has no value", words[k])))?;
                if !key.starts_with("net/") {
                    return Err(ctx.refuse(format!("sysctl {key} is outside net/")));
                }
                b.sysctls.push((key.replace('/', "."), value.to_string()));
                k += 1;
            }
        } else if w.starts_with("/tmp/sysctl_restore") {
            // The namespace is thrown away after the run; nothing to restore.
        } else {
            return Err(ctx.refuse(format!(
                "shell command `{w}`: only set_sysctls.py (net. sysctls) and defaults.sh are understood"
            )));
        }
    }
    Ok(())
}

/// Splits `name(args) = result` into its parts; args split at top-level commas.
fn parse_call<'a>(
    ctx: &Ctx,
    text: &'a str,
) -> Result<(&'a str, Vec<String>, &'a str), ImportError> {
    let open = text
        .find('(')
        .ok_or_else(|| ctx.refuse("neither a packet nor a system call"))?;
    let name = text[..open].trim();
    let mut depth = 0;
    let mut close = None;
    for (k, c) in text[open..].char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(open + k);
                    break;
                }
            }
            _ => {}
        }
    }
    let close = close.ok_or_else(|| ctx.refuse("unbalanced parentheses"))?;
    let mut args = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    for c in text[open + 1..close].chars() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                args.push(current.trim().to_string());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.trim().is_empty() {
        args.push(current.trim().to_string());
    }
    let result = text[close + 1..]
        .trim()
        .strip_prefix('=')
        .ok_or_else(|| ctx.refuse("a system call needs its expected result (`= 0`)"))?
        .trim();
    Ok((name, args, result))
}

/// `0`, `-1 EINPROGRESS (Operation now in progress)` → `0`, `EINPROGRESS`.
fn result_of(ctx: &Ctx, result: &str) -> Result<String, ImportError> {
    let mut words = result.split_whitespace();
    let first = words.next().unwrap_or("");
    if first == "-1" {
        let errno = words
            .next()
            .filter(|e| e.starts_with('E'))
            .ok_or_else(|| ctx.refuse("-1 without an errno name"))?;
        Ok(errno.to_string())
    } else if first.parse::<i64>().is_ok() {
        Ok(first.to_string())
    } else {
        Err(ctx.refuse(format!("result `{result}` is not a number or -1 ERRNO")))
    }
}

fn int_arg(ctx: &Ctx, arg: &str) -> Result<i64, ImportError> {
    arg.trim_matches(|c| c == '[' || c == ']')
        .trim()
        .parse()
        .map_err(|_| ctx.refuse(format!("`{arg}` is not an integer")))
}

impl Builder {
    fn step(&mut self, call: &'static str, yaml: String, result: Option<String>) {
        self.steps.push(yaml);
        let n = self.call_counts.entry(call).or_default();
        *n += 1;
        if let Some(result) = result {
            self.calls.push(format!(
                "{{ call: {call}, nth: {n}, result: {} }}",
                quote(&result)
            ));
        }
    }

    fn finish(mut self, path: &Path) -> Result<String, ImportError> {
        let shown = path.display().to_string();
        // packetdrill closes the socket when the script ends; say so, so that the teardown
        // is a step both implementations run, not something left to the harness.
        if !self.call_counts.contains_key("close") && self.socket_seen {
            self.steps.push("close".into());
            self.dropped
                .push("the script ends with the socket open; a close step is added".into());
        }
        if !self.socket_seen {
            return Err(ImportError::Script {
                path: shown,
                why: "no socket(..., SOCK_STREAM, ...) call: not a connect script".into(),
            });
        }
        if !self.call_counts.contains_key("connect") {
            return Err(ImportError::Script {
                path: shown,
                why: "no connect() call: tcptwin cases are about the active open".into(),
            });
        }
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "imported".into());
        let name: String = stem
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let mut y = String::new();
        let _ = writeln!(y, "{}", crate::tools::schema::MODELINE);
        let _ = writeln!(y, "name: pd-{name}");
        let mut description = self.description.join(" ");
        if !description.is_empty() && !description.ends_with('.') {
            description.push('.');
        }
        let _ = write!(
            description,
            "{}Imported from packetdrill script {}.",
            if description.is_empty() { "" } else { " " },
            path.file_name().unwrap_or_default().to_string_lossy()
        );
        if !self.dropped.is_empty() {
            let _ = write!(
                description,
                " Not carried over: {}.",
                self.dropped.join("; ")
            );
        }
        let _ = writeln!(y, "description: {}", quote(&description));
        let _ = writeln!(y, "tags: [packetdrill]");
        if !self.sysctls.is_empty() {
            y.push_str("sysctls:\n");
            for (k, v) in &self.sysctls {
                let value = if v.parse::<i64>().is_ok() {
                    v.clone()
                } else {
                    quote(v)
                };
                let _ = writeln!(y, "  {k}: {value}");
            }
        }
        y.push_str("steps:\n");
        for s in &self.steps {
            let _ = writeln!(y, "  - {s}");
        }
        y.push_str("peer:\n");
        let mut syn: Vec<String> = self
            .reactions
            .iter()
            .map(|r| r.as_ref().map_or("drop".to_string(), |r| r.yaml.clone()))
            .collect();
        // Trailing drops are what `then: drop` does anyway.
        while syn.last().is_some_and(|s| s == "drop") {
            syn.pop();
        }
        if syn.is_empty() {
            y.push_str("  syn: []\n");
        } else {
            y.push_str("  syn:\n");
            for s in &syn {
                let _ = writeln!(y, "    - {s}");
            }
        }
        y.push_str("  then: drop\n");
        if !self.established.is_empty() {
            y.push_str("  established:\n");
            for a in &self.established {
                let _ = writeln!(y, "    - {a}");
            }
        }
        if let Some(on_fin) = self.on_fin {
            let _ = writeln!(y, "  on_fin: {on_fin}");
        }
        y.push_str("expect:\n");
        if self.calls.is_empty() {
            y.push_str("  calls: []\n");
        } else {
            y.push_str("  calls:\n");
            for c in &self.calls {
                let _ = writeln!(y, "    - {c}");
            }
        }
        if !self.syn_times.is_empty() {
            y.push_str("  syn:\n");
            let _ = writeln!(y, "    count: {}", self.syn_times.len());
            if self.syn_times.len() > 1 {
                let gaps: Vec<String> = self
                    .syn_times
                    .windows(2)
                    .map(|w| format!("{}", ms(w[1] - w[0])))
                    .collect();
                let _ = writeln!(y, "    intervals_ms: [{}]", gaps.join(", "));
            }
        }
        // Room for the script's own timeline plus the settle time.
        let span = self.now.max(self.last_call_end);
        let _ = writeln!(y, "time_limit_s: {}", (span + 5.0).ceil().min(600.0));
        crate::case::parse(path, &y).map_err(|e| ImportError::Script {
            path: shown,
            why: format!("the translation does not load as a case ({e}); this is a tcptwin bug"),
        })?;
        Ok(y)
    }
}

fn ms(seconds: f64) -> u64 {
    (seconds * 1000.0).round().max(0.0) as u64
}

/// A YAML scalar, quoted when plain style would change its meaning.
fn quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        && !text.starts_with(['-', '.'])
        && text.parse::<f64>().is_err();
    if plain {
        text.to_string()
    } else {
        format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

fn syscall(b: &mut Builder, ctx: &Ctx, time: (f64, f64), text: &str) -> Result<(), ImportError> {
    let (name, args, result) = parse_call(ctx, text)?;
    if name == "socket" {
        if b.socket_seen {
            return Err(ctx.refuse("a second socket: a case drives one socket"));
        }
        if !args.get(1).is_some_and(|a| a.contains("SOCK_STREAM")) {
            return Err(ctx.refuse("only SOCK_STREAM sockets"));
        }
        if args.first().is_some_and(|a| a.contains("AF_INET6")) {
            return Err(ctx.refuse("IPv6 sockets: tcptwin's topology is IPv4"));
        }
        b.socket_seen = true;
        b.last_call_end = time.1;
        if args[1].contains("SOCK_NONBLOCK") {
            b.step("fcntl", "nonblocking: true".into(), None);
        }
        return Ok(());
    }
    if !b.socket_seen {
        return Err(ctx.refuse("a call before socket()"));
    }
    // A call that starts well after the previous one returned: the script pauses.
    let pause = ms(time.0 - b.last_call_end);
    if pause > 0 {
        b.steps.push(format!("wait_ms: {pause}"));
    }
    b.last_call_end = time.1;
    if name == "fcntl" && args.get(1).is_some_and(|a| a == "F_GETFL") {
        // Reads the flags back; it changes nothing on the socket.
        b.dropped.push(format!("F_GETFL (line {})", ctx.line));
        return Ok(());
    }
    let result_text = result_of(ctx, result)?;
    let expect = Some(result_text.clone());
    match name {
        "setsockopt" => {
            let [_, level, opt, value, _len] = &args[..] else {
                return Err(ctx.refuse("setsockopt takes 5 arguments"));
            };
            let known = [
                ("TCP_MAXSEG", "SOL_TCP"),
                ("TCP_SYNCNT", "SOL_TCP"),
                ("TCP_USER_TIMEOUT", "SOL_TCP"),
                ("TCP_FASTOPEN_CONNECT", "SOL_TCP"),
                ("TCP_WINDOW_CLAMP", "SOL_TCP"),
                ("TCP_NODELAY", "SOL_TCP"),
                ("TCP_QUICKACK", "SOL_TCP"),
                ("TCP_RTO_MAX_MS", "SOL_TCP"),
                ("SO_RCVBUF", "SOL_SOCKET"),
                ("SO_SNDBUF", "SOL_SOCKET"),
                ("IP_TOS", "SOL_IP"),
                ("IP_TTL", "SOL_IP"),
                ("IP_BIND_ADDRESS_NO_PORT", "SOL_IP"),
            ];
            let level = level.replace("IPPROTO_TCP", "SOL_TCP").replace("IPPROTO_IP", "SOL_IP");
            if !known.iter().any(|(o, l)| o == opt && *l == level) {
                return Err(ctx.refuse(format!(
                    "setsockopt {level}/{opt}: tcptwin cases set {}",
                    known.map(|(o, _)| o).join(", ")
                )));
            }
            let v = int_arg(ctx, value)?;
            let check = (result_text != "0").then_some(result_text);
            b.step("setsockopt", format!("setsockopt: {{ {opt}: {v} }}"), check);
        }
        "getsockopt" => {
            let [_, _level, opt, value, _len] = &args[..] else {
                return Err(ctx.refuse("getsockopt takes 5 arguments"));
            };
            if !["SO_ERROR", "TCP_MAXSEG", "SO_RCVBUF"].contains(&opt.as_str()) {
                return Err(ctx.refuse(format!(
                    "getsockopt {opt}: tcptwin cases read SO_ERROR, TCP_MAXSEG, SO_RCVBUF"
                )));
            }
            let inner = value.trim_matches(|c| c == '[' || c == ']').trim();
            let got = if result_text != "0" {
                result_text
            } else if opt == "SO_ERROR" {
                inner.to_string()
            } else {
                int_arg(ctx, inner)?.to_string()
            };
            b.step("getsockopt", format!("getsockopt: {opt}"), Some(got));
        }
        "bind" => b.step("bind", "bind: {}".into(), expect),
        "connect" => b.step("connect", "connect: {}".into(), expect),
        "close" => b.step("close", "close".into(), expect),
        "fcntl" => match args.get(1).map(String::as_str) {
            Some("F_SETFL") => {
                let flags = args.get(2).cloned().unwrap_or_default();
                let on = flags.contains("O_NONBLOCK");
                b.step("fcntl", format!("nonblocking: {on}"), None);
            }
            _ => return Err(ctx.refuse("fcntl: only F_SETFL (O_NONBLOCK) and F_GETFL")),
        },
        "poll" => {
            let fds = args.first().cloned().unwrap_or_default();
            let field = |key: &str| -> Option<String> {
                let at = fds.find(&format!("{key}="))? + key.len() + 1;
                let rest = &fds[at..];
                let end = rest.find([',', '}']).unwrap_or(rest.len());
                Some(rest[..end].trim().to_string())
            };
            let events = field("events").ok_or_else(|| ctx.refuse("poll without events="))?;
            let names: Vec<&str> = events.split('|').map(str::trim).collect();
            for n in &names {
                if !["POLLIN", "POLLOUT", "POLLRDHUP"].contains(n) {
                    return Err(ctx.refuse(format!("poll event {n}: tcptwin polls POLLIN, POLLOUT, POLLRDHUP")));
                }
            }
            let timeout = args
                .get(2)
                .ok_or_else(|| ctx.refuse("poll without a timeout"))
                .and_then(|t| int_arg(ctx, t))?;
            let revents = field("revents").unwrap_or_default();
            let check = if result_text == "0" {
                "0".to_string()
            } else if revents.is_empty() {
                result_text
            } else {
                revents.replace(' ', "")
            };
            b.step(
                "poll",
                format!("poll: {{ events: [{}], timeout_ms: {timeout} }}", names.join(", ")),
                Some(check),
            );
        }
        "write" | "send" => {
            let n = int_arg(ctx, args.get(2).map_or("", String::as_str))?;
            b.step("send", format!("send: {{ bytes: {n} }}"), expect);
        }
        "read" | "recv" => {
            let n = int_arg(ctx, args.get(2).map_or("", String::as_str))?;
            b.step("recv", format!("recv: {{ max: {n} }}"), expect);
        }
        other => {
            return Err(ctx.refuse(format!(
                "{other}(): outside the connect subset (socket, setsockopt, getsockopt, bind, connect, fcntl, poll, close, write/send, read/recv)"
            )))
        }
    }
    Ok(())
}

/// A TCP segment line: flags, `start:end(len)`, then `ack N`, `win N`, `<options>`.
struct Segment {
    flags: String,
    len: i64,
    ack: Option<i64>,
    win: Option<u16>,
    options: Option<String>,
}

fn segment(ctx: &Ctx, text: &str) -> Result<Segment, ImportError> {
    let (head, options) = match text.find('<') {
        Some(p) => {
            let end = text[p..]
                .find('>')
                .ok_or_else(|| ctx.refuse("unterminated option list"))?;
            (&text[..p], Some(text[p + 1..p + end].to_string()))
        }
        None => (text, None),
    };
    let mut words = head.split_whitespace();
    let flags = words.next().unwrap_or("").to_string();
    if flags.is_empty() || !flags.chars().all(|c| "SFRP.EWU".contains(c)) {
        return Err(ctx.refuse(format!("`{flags}` is not a TCP flag set")));
    }
    let range = words
        .next()
        .ok_or_else(|| ctx.refuse("no sequence range"))?;
    let parse_range = || -> Option<i64> {
        let (start, rest) = range.split_once(':')?;
        let (_end, len) = rest.split_once('(')?;
        start.parse::<i64>().ok()?;
        len.trim_end_matches(')').parse().ok()
    };
    let len =
        parse_range().ok_or_else(|| ctx.refuse(format!("`{range}` is not start:end(len)")))?;
    let mut seg = Segment {
        flags,
        len,
        ack: None,
        win: None,
        options,
    };
    while let Some(w) = words.next() {
        let value = words.next().and_then(|v| v.parse::<i64>().ok());
        match (w, value) {
            ("ack", Some(v)) => seg.ack = Some(v),
            ("win", Some(v)) => {
                seg.win =
                    Some(u16::try_from(v).map_err(|_| ctx.refuse(format!("window {v} > 65535")))?)
            }
            _ => return Err(ctx.refuse(format!("`{w}` is not understood in a segment"))),
        }
    }
    Ok(seg)
}

fn outbound(b: &mut Builder, ctx: &Ctx, t: f64, text: &str) -> Result<(), ImportError> {
    if text.starts_with("icmp") || text.starts_with('[') {
        return Err(ctx.refuse("an outbound ICMP: the DUT's own ICMP is not a connect-path event"));
    }
    let seg = segment(ctx, text)?;
    if text.contains('{') {
        return Err(ctx
            .refuse("packet mutation (`{ mut ... }`): a fuzzing feature with no case equivalent"));
    }
    if seg.flags.contains('S') && !seg.flags.contains('.') {
        if seg.len > 0 {
            return Err(ctx.refuse(
                "a SYN with data (TCP Fast Open with data) is outside the connect subset",
            ));
        }
        b.syn_times.push(t);
        b.reactions.push(None);
    } else if seg.flags.contains('F') {
        b.dut_fin_sent = true;
    }
    Ok(())
}

fn inbound(b: &mut Builder, ctx: &Ctx, t: f64, text: &str) -> Result<(), ImportError> {
    if let Some(icmp) = text.strip_prefix("icmp") {
        return inbound_icmp(b, ctx, t, icmp.trim());
    }
    let seg = segment(ctx, text)?;
    let synack = seg.flags.contains('S');
    let rst = seg.flags.contains('R');
    if synack || (rst && !b.handshake_done) {
        if !seg.flags.contains('.') && synack {
            return Err(
                ctx.refuse("an inbound bare SYN (simultaneous open) has no peer equivalent")
            );
        }
        let (index, since) = last_syn(b, ctx)?;
        let delay = ms(t - since);
        let ack_delta = seg.ack.map_or(0, |a| a - 1);
        let yaml = if synack {
            let mut fields = Vec::new();
            if let Some(options) = &seg.options {
                fields.push(format!("options: [{}]", peer_options(ctx, options)?));
            } else {
                fields.push("options: []".into());
            }
            if let Some(win) = seg.win {
                fields.push(format!("window: {win}"));
            }
            if ack_delta != 0 {
                fields.push(format!("ack_delta: {ack_delta}"));
            }
            if seg.flags.contains('E') {
                fields.push("ece: true".into());
            }
            if seg.flags.contains('W') {
                fields.push("cwr: true".into());
            }
            if seg.len > 0 {
                fields.push(format!("payload: {}", seg.len));
            }
            if seg.flags.contains('F') {
                fields.push("fin: true".into());
            }
            if delay > 0 {
                fields.push(format!("delay_ms: {delay}"));
            }
            if ack_delta == 0 {
                b.handshake_done = true;
            }
            format!("synack: {{ {} }}", fields.join(", "))
        } else {
            let mut fields = Vec::new();
            if !seg.flags.contains('.') {
                fields.push("no_ack: true".to_string());
            }
            if ack_delta != 0 && seg.flags.contains('.') {
                fields.push(format!("ack_delta: {ack_delta}"));
            }
            if delay > 0 {
                fields.push(format!("delay_ms: {delay}"));
            }
            format!("rst: {{ {} }}", fields.join(", "))
        };
        if b.reactions[index].is_some() {
            return Err(ctx.refuse("a second answer to one SYN: the peer answers each SYN once"));
        }
        b.reactions[index] = Some(Reaction { yaml });
        return Ok(());
    }
    if !b.handshake_done {
        return Err(ctx
            .refuse("an inbound segment before the handshake that is not a SYN-ACK, RST or ICMP"));
    }
    // After the handshake: the peer's own script.
    let since = b.last_peer_action.unwrap_or(t);
    let gap = ms(t - since);
    if gap > 0 {
        b.established.push(format!("wait_ms: {gap}"));
    }
    b.last_peer_action = Some(t);
    if rst {
        b.established.push("rst".into());
    } else if seg.flags.contains('F') && b.dut_fin_sent {
        if seg.len > 0 {
            return Err(ctx.refuse("data on the FIN that answers the DUT's FIN"));
        }
        b.on_fin = Some("ack_fin");
    } else {
        if seg.len > 0 {
            b.established.push(format!("send: {}", seg.len));
        }
        if seg.flags.contains('F') {
            b.established.push("fin".into());
        }
        if seg.len == 0 && !seg.flags.contains('F') {
            if b.dut_fin_sent {
                b.on_fin.get_or_insert("ack");
            } else {
                return Err(
                    ctx.refuse("a bare inbound ACK: the scripted peer acknowledges on its own")
                );
            }
        }
    }
    Ok(())
}

/// The SYN an answer goes to: the latest one sent.
fn last_syn(b: &Builder, ctx: &Ctx) -> Result<(usize, f64), ImportError> {
    b.syn_times
        .last()
        .map(|t| (b.syn_times.len() - 1, *t))
        .ok_or_else(|| ctx.refuse("an answer before any SYN was sent"))
}

fn peer_options(ctx: &Ctx, list: &str) -> Result<String, ImportError> {
    let mut out = Vec::new();
    for opt in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let mut words = opt.split_whitespace();
        let kind = words.next().unwrap_or("");
        let num = |w: Option<&str>| -> Result<i64, ImportError> {
            w.and_then(|v| v.parse().ok())
                .ok_or_else(|| ctx.refuse(format!("option `{opt}` needs a number")))
        };
        out.push(match kind {
            "mss" => format!("{{ mss: {} }}", num(words.next())?),
            "sackOK" => "sack_perm".into(),
            "nop" => "nop".into(),
            "eol" => "eol".into(),
            "wscale" => format!("{{ wscale: {} }}", num(words.next())?),
            "TS" => {
                // `TS val V ecr E`: echoing the DUT's TSval is what a listener does.
                let _val = words.next();
                let val = num(words.next())?;
                let _ecr = words.next();
                let ecr = num(words.next())?;
                if ecr == 0 {
                    format!("{{ ts: {{ val: {val}, ecr: 0 }} }}")
                } else {
                    "ts_echo".into()
                }
            }
            other => {
                return Err(ctx.refuse(format!(
                    "TCP option `{other}`: the peer sends mss, sackOK, TS, nop, eol, wscale"
                )))
            }
        });
    }
    Ok(out.join(", "))
}

/// `icmp unreachable port_unreachable [start:end(len)]`, `icmp unreachable frag_needed mtu
/// 1200 [...]`, `icmp time_exceeded ttl_exceeded [...]`.
fn inbound_icmp(b: &mut Builder, ctx: &Ctx, t: f64, text: &str) -> Result<(), ImportError> {
    let (head, quoted) = match text.find('[') {
        Some(p) => (&text[..p], Some(text[p + 1..].trim_end_matches(']').trim())),
        None => (text, None),
    };
    let words: Vec<&str> = head.split_whitespace().collect();
    const UNREACH: [&str; 16] = [
        "net_unreachable",
        "host_unreachable",
        "protocol_unreachable",
        "port_unreachable",
        "frag_needed",
        "source_route_failed",
        "net_unknown",
        "host_unknown",
        "source_host_isolated",
        "net_prohibited",
        "host_prohibited",
        "net_unreachable_for_tos",
        "host_unreachable_for_tos",
        "packet_filtered",
        "precedence_violation",
        "precedence_cutoff",
    ];
    let (icmp_type, code) = match (words.first().copied(), words.get(1).copied()) {
        (Some("unreachable"), Some(c)) => (
            3,
            UNREACH
                .iter()
                .position(|n| *n == c)
                .ok_or_else(|| ctx.refuse(format!("ICMP unreachable code `{c}`")))?,
        ),
        (Some("time_exceeded"), Some("ttl_exceeded")) => (11, 0),
        (Some("time_exceeded"), Some("frag_reassembly_time_exceeded")) => (11, 1),
        (Some("source_quench"), _) => (4, 0),
        _ => return Err(ctx.refuse("ICMP: only unreachable, time_exceeded and source_quench")),
    };
    let mut fields = vec![format!("type: {icmp_type}"), format!("code: {code}")];
    if let Some(p) = words.iter().position(|w| *w == "mtu") {
        let mtu: u16 = words
            .get(p + 1)
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| ctx.refuse("`mtu` needs a number"))?;
        fields.push(format!("mtu: {mtu}"));
    }
    if let Some(q) = quoted {
        let start: i64 = q
            .split(':')
            .next()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| ctx.refuse(format!("quoted segment `{q}` is not start:end(len)")))?;
        if start != 0 {
            fields.push(format!("seq_delta: {start}"));
        }
    }
    let (index, since) = last_syn(b, ctx)?;
    if b.handshake_done {
        return Err(ctx.refuse("an ICMP error after the handshake is outside the connect subset"));
    }
    let delay = ms(t - since);
    if delay > 0 {
        fields.push(format!("delay_ms: {delay}"));
    }
    if b.reactions[index].is_some() {
        return Err(ctx.refuse("a second answer to one SYN: the peer answers each SYN once"));
    }
    b.reactions[index] = Some(Reaction {
        yaml: format!("icmp: {{ {} }}", fields.join(", ")),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(text: &str) -> Result<String, ImportError> {
        translate(Path::new("t/test-script.pkt"), text)
    }

    #[test]
    fn times_are_absolute_relative_or_ranges() {
        let ctx = Ctx {
            path: "x",
            line: 1,
            text: "",
        };
        assert_eq!(split_time(&ctx, "0 x", 5.0).unwrap().0, (0.0, 0.0));
        assert_eq!(split_time(&ctx, "+.1 x", 1.0).unwrap().0, (1.1, 1.1));
        assert_eq!(
            split_time(&ctx, "+.1...0.200 x", 0.0).unwrap().0,
            (0.1, 0.2)
        );
        assert!(split_time(&ctx, "+abc x", 0.0).is_err());
    }

    #[test]
    fn a_refusal_names_the_line_and_why() {
        let e = tr("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 listen(3, 1) = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("t/test-script.pkt:2: cannot translate `+0 listen(3, 1) = 0`"),
            "{e}"
        );
        assert!(e.contains("outside the connect subset"), "{e}");
    }

    #[test]
    fn quoting_keeps_yaml_meaning() {
        assert_eq!(quote("ECONNREFUSED"), "ECONNREFUSED");
        assert_eq!(quote("0"), "\"0\"");
        assert_eq!(quote("POLLOUT|POLLERR"), "\"POLLOUT|POLLERR\"");
    }
}
