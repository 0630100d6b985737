# Ponte agent — what the customer reads. English.
# Arguments written { $path }, { $command }, { $text }, { $peer }, { $reason } are already made
# inert (escaped) where they come from the assistant. Keep every key in it.ftl and pl.ftl too.

## Waiting for the assistant
ready-title = Read these to your assistant:
ready-session = Session ID:
ready-code = Code:
ready-valid = { $minutes ->
    [one] They can be used for one minute. Nobody can connect without both.
   *[other] They can be used for { $minutes } minutes. Nobody can connect without both.
}
ready-quit = Press Ctrl-C to quit.
ready-instruction = Read the session ID and the code to your assistant on the phone. Nobody can connect without both.
ready-countdown = Valid for { $time }
ready-copy = Copy
ready-copied = Copied

## Connection attempts
attempt-connecting = Someone is connecting with your session ID…
attempt-wrong-code = { $left ->
    [one] Someone tried a wrong code — one try left.
   *[other] Someone tried a wrong code — { $left } tries left.
}
attempt-abandoned = Someone connected with your session ID and left without a code.
attempt-failed = A connection attempt failed: { $reason }
attempt-turned-away = Someone else tried to connect with your session ID; the relay turned them away ({ $reason }).
attempt-burned = The code was tried wrongly too often and is no longer valid. Here is a new one.
attempt-expired = The code expired unused. Here is a new one.

## Who is asking
peer-verified = verified: { $name }, { $organisation }
peer-verified-claims = verified: { $name }, { $organisation } (their certificate calls it { $claimed })
peer-unverified = UNVERIFIED ({ $reason }); key fingerprint { $fingerprint }
unverified-title = UNVERIFIED ASSISTANT
unverified-body = Nobody you trust vouches for this person ({ $reason }).
unverified-stop = If you did not call this company yourself, end the session now.
unverified-stop-text = If you did not call this company yourself, type 'end' now.
key-fingerprint = Key fingerprint: { $fingerprint }
cert-missing = no certificate
cert-malformed = the certificate is malformed
cert-bad-text = the certificate's name is not acceptable
cert-unknown-issuer = issued by an organisation this computer does not trust
cert-bad-signature = the organisation's signature on the certificate is invalid
cert-key-mismatch = the certificate belongs to a different key
cert-expired = the certificate has expired
cert-not-yet-valid = the certificate is not valid yet

## Consent
consent-connected = An assistant has connected.
consent-files = Files: the folder { $folder } is shared. Without the terminal, hidden files, places programs start from and anything outside it are asked one by one; the terminal reaches all your files.
consent-what = What may they do?
consent-what-text = What may they do? (y or n; 'end' ends the session)
consent-allow-cap = Allow them to { $what }?
consent-allow-selected = Allow selected
consent-deny = Deny
cap-terminal = run commands and a terminal as you — that is everything you can do on this computer: all your files, your screen, your keyboard and mouse, Ponte's own settings
cap-upload = put files on this computer
cap-download = copy files from this computer (otherwise you are asked per file)
cap-info = read system information (OS, CPU, memory, disks, network)
cap-chat = chat with you
cap-screen = see your screen
cap-control = use your mouse and keyboard
name-terminal = Terminal
name-upload = Put files here
name-download = Copy files from here
name-info = System information
name-chat = Chat
name-screen = See the screen
name-control = Mouse and keyboard
grants-nothing = nothing
connected = Connected: { $peer }.
allowed = Allowed: { $grants }.
commands-hint = Type 'revoke NAME', 'grant NAME', 'chat TEXT' or 'end'.
commands-help = Commands: revoke NAME, grant NAME (terminal, upload, download, info, screen, control), chat TEXT, end

## Questions
question-list = { $count ->
    [one] The assistant wants to SEE WHAT IS IN the folder { $path } on this computer (the name of its one entry).
   *[other] The assistant wants to SEE WHAT IS IN the folder { $path } on this computer (the names, sizes and dates of its { $count } entries).
}
question-copy-file = The assistant wants to COPY the file { $path } ({ $size }) FROM this computer.
question-copy-folder = { $files ->
    [one] The assistant wants to COPY the folder { $path } (one file, { $size }) FROM this computer.
   *[other] The assistant wants to COPY the folder { $path } ({ $files } files, { $size }) FROM this computer.
}
question-hidden-items = { $count ->
    [one] It includes one hidden item.
   *[other] It includes { $count } hidden items.
}
question-put-file = The assistant wants to PUT the file { $path } ({ $size }) ON this computer.
question-put-folder = { $files ->
    [one] The assistant wants to PUT the folder { $path } (one file, { $size }) ON this computer.
   *[other] The assistant wants to PUT the folder { $path } ({ $files } files, { $size }) ON this computer.
}
question-creates = This creates the folder { $folder }.
question-relay-changed = WARNING: the relay { $relay } presents a DIFFERENT certificate than before (before: { $known }, now: { $seen }). Someone may be intercepting the connection. Continue only if the relay's operator confirmed the new fingerprint.
question-allow = Allow?
question-allow-button = Allow
question-allow-text = Allow? [y/N]
question-changed = The question just changed. Read it, then answer again.
question-answer-yn = Please answer y (yes) or n (no).
question-still-asking = (still asking) { $question }
question-withdrawn = (That question was withdrawn: the request ended or waited too long.)
why-not-granted = you have not allowed this for the whole session
why-outside = it is OUTSIDE the folder you share
why-hidden = it is HIDDEN (settings, passwords or keys are kept in such places)
why-startup = programs there START AUTOMATICALLY or run as commands
why-replaces = it REPLACES what is there now
why-program = it is PONTE ITSELF or its settings: they decide whom Ponte trusts
answer-yes-words = y, yes
answer-no-words = n, no

## What the assistant does
command-started = command started: { $command } (terminal { $terminal })
command-finished = command finished ({ $status }): { $command }
terminal-opened = terminal { $terminal } opened ({ $shell }); what the assistant types is shown here
terminal-closed = terminal { $terminal } closed
terminal-entered = terminal { $terminal }: the assistant entered: { $line }
terminal-typed = terminal { $terminal }: the assistant typed: { $keys } — the terminal showed: { $line }
terminal-typed-unshown = terminal { $terminal }: the assistant typed: { $keys } (the terminal did not show it)
sending = sending { $path }
sent = sent { $path } ({ $what })
sent-hidden-left-out = { $count ->
    [one] one hidden item left out
   *[other] { $count } hidden items left out
}
receiving = receiving { $path }
received = received { $path } ({ $what }, hash verified)
files-and-size = { $files ->
    [one] one file, { $size }
   *[other] { $files } files, { $size }
}
listed = { $count ->
    [one] showed the folder { $path } (one entry)
   *[other] showed the folder { $path } ({ $count } entries)
}
info-read = system information read
screen-started = screen sharing started ({ $monitor } { $width }×{ $height })
screen-ended = screen sharing ended: { $reason }
screen-ended-closed = the assistant closed the screen
screen-ended-failed = the screen stream failed ({ $error })
system-dialog = Your system will now ask whether to share your screen, in a window of its own (not Ponte's). That is expected: choose the screen and "Share" to let the assistant see it. Switch on "Allow remote interaction" only if the assistant may also use your mouse and keyboard. Cancel it to share nothing.
screen-view-only = your desktop shares the screen view only: the assistant cannot use your mouse and keyboard
screen-monitor = the assistant switched to monitor { $monitor } ({ $width }×{ $height })
control-using = the assistant is using your mouse and keyboard
control-paused = { $count ->
    [one] you moved the mouse: one input event of the assistant paused
   *[other] you moved the mouse: { $count } input events of the assistant paused
}
control-dropped = { $count ->
    [one] dropped one input event from the assistant: control is not allowed
   *[other] dropped { $count } input events from the assistant: control is not allowed
}
control-view-only = { $count ->
    [one] dropped one input event from the assistant: this screen is shared view only
   *[other] dropped { $count } input events from the assistant: this screen is shared view only
}
input-done = the assistant's input: { $what }
input-paused = you moved the mouse: the assistant's input paused ({ $what })
input-pointer = pointer to ({ $x }, { $y })
input-click = button { $button } click
input-key = key { $key }
input-release = key or button released
input-typed = typed "{ $text }"
request-exec = run the command: { $command }
request-shell = open a terminal
request-get = copy { $path } from this computer
request-list = see what is in the folder { $path }
request-put = put { $path } on this computer ({ $what })
request-info = read system information
request-screen = see the screen
request-input = use the mouse and keyboard: { $what }
refused = refused: { $what } ({ $reason })
stopped = stopped: { $what } ({ $reason })
failed = failed: { $what } ({ $reason })
refused-count = { $count } requests of the assistant refused so far (not all listed)
permissions-changed = permissions changed: now allowed { $grants }
chat-too-long = a chat message from the assistant was too long and dropped
chat-too-fast = the assistant sends chat messages too fast: some are not shown
processes-ended = { $count ->
    [one] ended one process the assistant had left running
   *[other] ended { $count } processes the assistant had left running
}
more-characters = … ({ $count } more characters)
not-taken = Not taken: the assistant was just typing or clicking on this computer. If that was you, wait a moment and do it again.
nobody-connected = Nobody is connected yet.
first-relay = First connection to relay { $relay }; remembered its fingerprint { $fingerprint }
accepted-relay = Accepted the relay's new fingerprint { $fingerprint }
log-unwritable = Cannot write the activity log { $path }: { $error }

## Why a request was refused or stopped (the assistant is told in English)
reason-not-allowed = you have not allowed '{ $capability }'
reason-declined = you declined
reason-cannot-ask = nobody can be asked here (the agent runs for a script)
reason-busy = too many questions were open
reason-no-answer = you did not answer
reason-revoked = you revoked '{ $capability }'
reason-session-ended = the session ended
reason-too-long = the command is too long
reason-malformed = the request is malformed
reason-view-only = this screen is shared view only: it takes no mouse or keyboard input from Ponte
desktop-no-portal = your desktop offers no way to share the screen with Ponte (no screen-sharing portal)
desktop-portal-cancelled = you did not allow sharing the screen in the system's dialog
desktop-portal-unanswered = the system's sharing dialog was not answered within { $minutes } minutes
desktop-portal-failed = your system's screen sharing failed ({ $error })
desktop-no-pipewire = your desktop's screen-sharing service (PipeWire) is not running, so the screen cannot be shared
desktop-pipewire-failed = your system's screen stream (PipeWire) failed ({ $error })
reason-exists = { $path } already exists
reason-not-a-file = { $path } exists and is not a file
reason-not-a-folder = { $path } exists and is not a folder
reason-unusable = unusable path { $path }
reason-error = { $error }

## Chat
chat-assistant = assistant: { $text }
chat-you = you: { $text }
chat-send = Send

## The end
ended = Session ended: { $reason }.
ended-log = What happened is recorded in { $path }
ended-open-log = Open the log
ended-you = you ended the session
ended-quit-waiting = you quit before anyone connected
ended-left-before-answer = the assistant left before you answered
ended-no-answer = you did not answer in time
ended-connection-lost = the connection was lost ({ $error })
ended-by-operator = the relay's operator ended the session: "{ $reason }"
ended-relay-lost = the relay stopped answering (the relay, or its node of a cluster, may be down); start Ponte again for a new session
ended-not-resumed = the connection could not be restored within { $secs } s; start Ponte again for a new session
reconnecting = Connection lost — reconnecting… The assistant can do nothing until it is back (at most { $secs } s). You can end the session now.
reconnected = Reconnected: the session goes on, with the same permissions.
ended-assistant-left = the assistant disconnected
ended-assistant = the assistant ended the session
ended-declined = the session was declined
ended-flooded = the assistant's program sent request after request; the session was ended
ended-tampered = the connection between the two computers was tampered with (by the relay or the network); the session was ended and nothing more was sent
tampered-detected = tampering detected on the connection ({ $error }); ending the session
agent-failed = ponte-agent failed: { $error }

## The window
window-title = Ponte — remote assistance
window-end-session = End session
window-activity = What the assistant does
window-terminal = The assistant's terminal (read only)
window-transfers = Transfers
window-chat = Chat
window-permissions = What the assistant may do
window-screen-viewing = Your screen is being shared (view only).
window-screen-controlling = The assistant CONTROLS your mouse and keyboard.
window-since = Connected since { $time }
window-ended-at = Ended at { $time }
window-close = Close

## The bar on the shared screen
indicator-viewing = Ponte: your screen is shared (view only)
indicator-controlling = Ponte: the assistant CONTROLS mouse and keyboard

## The log
log-ready = session ID { $session } is ready for { $minutes } minutes (the code is not logged)
log-assistant-connected = assistant connected: { $peer }; asking what they may do (shared folder { $folder })
log-connected = connected: { $peer }; allowed: { $grants }
log-question = question { $id }: { $text }
log-answered-yes = question { $id }: you answered yes
log-answered-no = question { $id }: you answered no
log-withdrawn = question { $id }: withdrawn (the request ended or was not answered in time)
log-note = note: { $text }
log-chat-assistant = chat from the assistant: { $text }
log-chat-you = chat from you: { $text }
log-transcript-cut = terminal { $terminal } | [transcript cut: the limit of { $mib } MiB per session is reached]
log-transcript-lost = { $bytes } bytes of terminal output were not recorded
log-lines-lost = { $count } lines were not recorded (log limit { $mib } MiB)
log-ended = session ended: { $reason }
log-failed = the agent failed: { $error }

## Quick access (ponte-agent quick-access)
quick-access-none = No assistant may connect without a code.
quick-access-title = These may connect without a code while you have Ponte open (you still see who connects and decide):
quick-access-assistant = { $name }, { $organisation } (only this assistant)
quick-access-line = { $number }. { $who } — until { $until }; permissions remembered: { $grants }
quick-access-without-asking = ; allowed without asking
quick-access-key = ; key { $fingerprint }
quick-access-expired = ; EXPIRED
quick-access-remove-hint = To take one back: ponte-agent quick-access remove NUMBER
quick-access-removed = Removed: { $who }. They need a new code to connect again.
quick-access-no-such = There is no number { $number }; see ponte-agent quick-access list.
quick-access-organisation = any verified assistant of { $organisation } (asked by { $name })
attempt-quick-connecting = Someone is connecting without a code (quick access)…
attempt-quick-failed = A connection without a code did not succeed: { $reason }
attempt-quick-left = Someone connected without a code and left before proving who they are.
attempt-resume-failed = Someone tried to take over the interrupted session without its secret and was turned away: { $reason }
attempt-not-trusted = { $peer } tried to connect without a code, but you have not allowed that (or it expired or was removed). They were turned away.
question-quick-access = Let { $who } connect without a code whenever you start Ponte?
question-quick-access-until = { $days ->
    [one] For one day, until { $until }.
   *[other] For { $days } days, until { $until }.
}
question-quick-access-grants = Permissions they had at the end: { $grants }. Next time they will be pre-selected; you still see who connects and decide.
question-quick-access-revoke = You can take it back at any time: in this window while Ponte waits, or with ponte-agent quick-access remove.
quick-waiting = Also waiting for { $who }: they can connect without a code (quick access).
quick-granted = { $who } may now connect without a code until { $until }.
quick-declined = Quick access was not allowed.
quick-unverified = The assistant asked to connect without a code next time; that is possible only for verified assistants.
quick-unavailable = Quick access is off: { $error }
consent-remembered = Pre-selected from last time (quick access): { $grants }
quick-list-remove = Remove
quick-list-title = Quick access: who may connect without a code
quick-without-asking-note = You will still see who connects, and can end the session at any time.
quick-without-asking = Next time, allow these permissions at once without asking me
quick-period-option = { $days ->
    [one] one day (until { $until })
   *[other] { $days } days (until { $until })
}
quick-period = For how long?
question-quick-days = Type a number of days from 1 to 365, or y for the proposal; n or Enter: no.
question-quick-text = For how many days? Type a number from 1 to 365, or y for { $days } days; n or Enter: no quick access.
quick-later = The assistant asked to connect without a code next time. You will be asked when the session has ended, once nothing of theirs can act on this computer any more.
quick-assistant-left = The assistant disconnected before you answered: quick access was not set up.
question-quick-access-after = The session is over: everything the assistant ran through Ponte has been stopped, and Ponte's own files are as they were.
quick-remember = Permissions to remember for next time (pre-selected; you still decide):
question-quick-how = Next time: ask you what they may do (with { $grants } pre-selected), or allow { $grants } at once without asking?
question-quick-how-text = Type 1 to be asked each time, 2 to allow them without asking; n or Enter: no quick access at all.
quick-off = Quick access is off this time (the agent runs for a script, or with --no-quick-access): the assistants you allowed need the session ID and code too.
terminal-means-all = With the terminal allowed, the assistant can in effect also see your screen, use your keyboard and mouse, and read and change all your files and Ponte's settings.
own-file-changed = While the assistant had access, something other than Ponte changed { $path }. It decides whom Ponte trusts: if you did not change it yourself, have it checked before you start Ponte again (ponte-agent quick-access list shows who may connect without a code).
processes-still-running = Some programs the assistant started kept starting new ones and may still be running: restart the computer to be sure they are gone.
quick-not-asked-gone = The assistant's request to connect without a code next time was not put to you: the session did not end normally.
quick-not-asked-running = The assistant's request to connect without a code next time was not put to you: something it started may still be running.
quick-not-asked-changed = The assistant's request to connect without a code next time was not put to you: Ponte's own files changed while the assistant had access.

## Clipboard
cap-clipboard = read your clipboard and put text on it — each time the assistant asks, never by itself
name-clipboard = Clipboard
request-clipboard-get = read your clipboard
request-clipboard-set = put text on your clipboard
clipboard-read = { $count ->
    [one] the assistant read your clipboard (one character)
   *[other] the assistant read your clipboard ({ $count } characters)
}
clipboard-put = { $count ->
    [one] the assistant put one character on your clipboard
   *[other] the assistant put { $count } characters on your clipboard
}
clipboard-unavailable = the clipboard of this desktop cannot be reached: { $error }
log-clipboard-read = the clipboard the assistant read: { $text }
log-clipboard-put = what the assistant put on the clipboard: { $text }
