# Ponte agent — ciò che il cliente legge. Italiano.

## In attesa dell'assistente
ready-title = Leggi questi numeri al tuo assistente:
ready-session = ID sessione:
ready-code = Codice:
ready-valid = { $minutes ->
    [one] Valgono per un minuto. Nessuno può collegarsi senza entrambi.
   *[other] Valgono per { $minutes } minuti. Nessuno può collegarsi senza entrambi.
}
ready-quit = Premi Ctrl-C per uscire.
ready-instruction = Leggi al telefono l'ID sessione e il codice al tuo assistente. Nessuno può collegarsi senza entrambi.
ready-countdown = Valido ancora { $time }
ready-copy = Copia
ready-copied = Copiato

## Tentativi di connessione
attempt-connecting = Qualcuno si sta collegando con il tuo ID sessione…
attempt-wrong-code = { $left ->
    [one] Qualcuno ha provato un codice sbagliato — resta un tentativo.
   *[other] Qualcuno ha provato un codice sbagliato — restano { $left } tentativi.
}
attempt-abandoned = Qualcuno si è collegato con il tuo ID sessione ed è uscito senza codice.
attempt-failed = Un tentativo di connessione non è riuscito: { $reason }
attempt-turned-away = Qualcun altro ha provato a collegarsi con il tuo ID sessione; il relay lo ha respinto ({ $reason }).
attempt-burned = Il codice è stato sbagliato troppe volte e non è più valido. Eccone uno nuovo.
attempt-expired = Il codice è scaduto senza essere usato. Eccone uno nuovo.

## Chi chiede
peer-verified = verificato: { $name }, { $organisation }
peer-verified-claims = verificato: { $name }, { $organisation } (il suo certificato lo chiama { $claimed })
peer-unverified = NON VERIFICATO ({ $reason }); impronta della chiave { $fingerprint }
unverified-title = ASSISTENTE NON VERIFICATO
unverified-body = Nessuno di cui ti fidi garantisce per questa persona ({ $reason }).
unverified-stop = Se non sei stato tu a chiamare questa azienda, termina subito la sessione.
unverified-stop-text = Se non sei stato tu a chiamare questa azienda, scrivi subito 'end'.
key-fingerprint = Impronta della chiave: { $fingerprint }
cert-missing = nessun certificato
cert-malformed = il certificato non è valido
cert-bad-text = il nome nel certificato non è accettabile
cert-unknown-issuer = rilasciato da un'organizzazione di cui questo computer non si fida
cert-bad-signature = la firma dell'organizzazione sul certificato non è valida
cert-key-mismatch = il certificato appartiene a un'altra chiave
cert-expired = il certificato è scaduto
cert-not-yet-valid = il certificato non è ancora valido

## Consenso
consent-connected = Un assistente si è collegato.
consent-files = File: la cartella { $folder } è condivisa. Senza il terminale, i file nascosti, i luoghi da cui partono i programmi e tutto ciò che è fuori da essa vengono chiesti uno per uno; il terminale raggiunge tutti i tuoi file.
consent-what = Che cosa può fare?
consent-what-text = Che cosa può fare? (y o n; 'end' termina la sessione)
consent-allow-cap = Permettere di { $what }?
consent-allow-selected = Consenti le scelte
consent-deny = Rifiuta
cap-terminal = eseguire comandi e un terminale come te — cioè tutto ciò che puoi fare su questo computer: tutti i tuoi file, lo schermo, tastiera e mouse, le impostazioni di Ponte
cap-upload = mettere file su questo computer
cap-download = copiare file da questo computer (altrimenti ti viene chiesto file per file)
cap-info = leggere le informazioni di sistema (sistema operativo, CPU, memoria, dischi, rete)
cap-chat = chattare con te
cap-screen = vedere il tuo schermo
cap-control = usare il tuo mouse e la tua tastiera
name-terminal = Terminale
name-upload = Mettere file qui
name-download = Copiare file da qui
name-info = Informazioni di sistema
name-chat = Chat
name-screen = Vedere lo schermo
name-control = Mouse e tastiera
grants-nothing = niente
connected = Collegato: { $peer }.
allowed = Consentito: { $grants }.
commands-hint = Scrivi 'revoke NOME', 'grant NOME', 'chat TESTO' o 'end'.
commands-help = Comandi: revoke NOME, grant NOME (terminal, upload, download, info, screen, control), chat TESTO, end

## Domande
question-list = { $count ->
    [one] L'assistente vuole VEDERE COSA C'È nella cartella { $path } di questo computer (il nome del suo unico elemento).
   *[other] L'assistente vuole VEDERE COSA C'È nella cartella { $path } di questo computer (nomi, dimensioni e date dei suoi { $count } elementi).
}
question-copy-file = L'assistente vuole COPIARE il file { $path } ({ $size }) DA questo computer.
question-copy-folder = { $files ->
    [one] L'assistente vuole COPIARE la cartella { $path } (un file, { $size }) DA questo computer.
   *[other] L'assistente vuole COPIARE la cartella { $path } ({ $files } file, { $size }) DA questo computer.
}
question-hidden-items = { $count ->
    [one] Contiene un elemento nascosto.
   *[other] Contiene { $count } elementi nascosti.
}
question-put-file = L'assistente vuole METTERE il file { $path } ({ $size }) SU questo computer.
question-put-folder = { $files ->
    [one] L'assistente vuole METTERE la cartella { $path } (un file, { $size }) SU questo computer.
   *[other] L'assistente vuole METTERE la cartella { $path } ({ $files } file, { $size }) SU questo computer.
}
question-creates = Verrà creata la cartella { $folder }.
question-relay-changed = ATTENZIONE: il relay { $relay } presenta un certificato DIVERSO da prima (prima: { $known }, ora: { $seen }). Qualcuno potrebbe intercettare la connessione. Continua solo se il gestore del relay ha confermato la nuova impronta.
question-allow = Consentire?
question-allow-button = Consenti
question-allow-text = Consentire? [s/N]
question-changed = La domanda è appena cambiata. Leggila, poi rispondi di nuovo.
question-answer-yn = Rispondi s (sì) o n (no).
question-still-asking = (in attesa di risposta) { $question }
question-withdrawn = (La domanda è stata ritirata: la richiesta è terminata o ha atteso troppo.)
why-not-granted = non l'hai consentito per tutta la sessione
why-outside = è FUORI dalla cartella che condividi
why-hidden = è NASCOSTO (impostazioni, password o chiavi si trovano in luoghi così)
why-startup = i programmi lì PARTONO DA SOLI o vengono eseguiti come comandi
why-replaces = SOSTITUISCE ciò che c'è ora
why-program = è PONTE STESSO o le sue impostazioni: decidono di chi Ponte si fida
answer-yes-words = s, si, sì, y, yes
answer-no-words = n, no

## Che cosa fa l'assistente
command-started = comando avviato: { $command } (terminale { $terminal })
command-finished = comando terminato ({ $status }): { $command }
terminal-opened = terminale { $terminal } aperto ({ $shell }); qui vedi ciò che l'assistente scrive
terminal-closed = terminale { $terminal } chiuso
terminal-entered = terminale { $terminal }: l'assistente ha inserito: { $line }
terminal-typed = terminale { $terminal }: l'assistente ha digitato: { $keys } — il terminale ha mostrato: { $line }
terminal-typed-unshown = terminale { $terminal }: l'assistente ha digitato: { $keys } (il terminale non l'ha mostrato)
sending = invio di { $path }
sent = inviato { $path } ({ $what })
sent-hidden-left-out = { $count ->
    [one] un elemento nascosto escluso
   *[other] { $count } elementi nascosti esclusi
}
receiving = ricezione di { $path }
received = ricevuto { $path } ({ $what }, hash verificato)
files-and-size = { $files ->
    [one] un file, { $size }
   *[other] { $files } file, { $size }
}
listed = { $count ->
    [one] mostrata la cartella { $path } (un elemento)
   *[other] mostrata la cartella { $path } ({ $count } elementi)
}
info-read = informazioni di sistema lette
screen-started = condivisione dello schermo avviata ({ $monitor } { $width }×{ $height })
screen-ended = condivisione dello schermo terminata: { $reason }
screen-ended-closed = l'assistente ha chiuso lo schermo
screen-ended-failed = il flusso dello schermo si è interrotto ({ $error })
system-dialog = Ora il sistema ti chiederà, in una sua finestra (non di Ponte), se condividere lo schermo. È previsto: scegli lo schermo e "Condividi" perché l'assistente lo veda. Attiva "Consenti interazione remota" solo se l'assistente può usare anche mouse e tastiera. Annulla per non condividere nulla.
screen-view-only = il tuo desktop condivide lo schermo in sola visione: l'assistente non può usare mouse e tastiera
screen-monitor = l'assistente è passato al monitor { $monitor } ({ $width }×{ $height })
control-using = l'assistente sta usando il tuo mouse e la tua tastiera
control-paused = { $count ->
    [one] hai mosso il mouse: un evento dell'assistente messo in pausa
   *[other] hai mosso il mouse: { $count } eventi dell'assistente messi in pausa
}
control-dropped = { $count ->
    [one] scartato un evento dell'assistente: il controllo non è consentito
   *[other] scartati { $count } eventi dell'assistente: il controllo non è consentito
}
control-view-only = { $count ->
    [one] scartato un evento dell'assistente: questo schermo è condiviso in sola visione
   *[other] scartati { $count } eventi dell'assistente: questo schermo è condiviso in sola visione
}
input-done = input dell'assistente: { $what }
input-paused = hai mosso il mouse: l'input dell'assistente è in pausa ({ $what })
input-pointer = puntatore a ({ $x }, { $y })
input-click = clic del pulsante { $button }
input-key = tasto { $key }
input-release = tasto o pulsante rilasciato
input-typed = scritto "{ $text }"
request-exec = eseguire il comando: { $command }
request-shell = aprire un terminale
request-get = copiare { $path } da questo computer
request-list = vedere cosa c'è nella cartella { $path }
request-put = mettere { $path } su questo computer ({ $what })
request-info = leggere le informazioni di sistema
request-screen = vedere lo schermo
request-input = usare mouse e tastiera: { $what }
refused = rifiutato: { $what } ({ $reason })
stopped = fermato: { $what } ({ $reason })
failed = non riuscito: { $what } ({ $reason })
refused-count = { $count } richieste dell'assistente rifiutate finora (non tutte elencate)
permissions-changed = permessi cambiati: ora consentito { $grants }
chat-too-long = un messaggio dell'assistente era troppo lungo ed è stato scartato
chat-too-fast = l'assistente invia messaggi troppo velocemente: alcuni non vengono mostrati
processes-ended = { $count ->
    [one] terminato un processo che l'assistente aveva lasciato in esecuzione
   *[other] terminati { $count } processi che l'assistente aveva lasciato in esecuzione
}
more-characters = … (altri { $count } caratteri)
not-taken = Non accettato: l'assistente stava appena scrivendo o cliccando su questo computer. Se eri tu, aspetta un momento e riprova.
nobody-connected = Non è ancora collegato nessuno.
first-relay = Prima connessione al relay { $relay }; memorizzata la sua impronta { $fingerprint }
accepted-relay = Accettata la nuova impronta del relay { $fingerprint }
log-unwritable = Impossibile scrivere il registro delle attività { $path }: { $error }

## Perché una richiesta è stata rifiutata o fermata
reason-not-allowed = non hai consentito '{ $capability }'
reason-declined = hai rifiutato
reason-cannot-ask = qui non si può chiedere a nessuno (l'agente è usato da uno script)
reason-busy = c'erano troppe domande aperte
reason-no-answer = non hai risposto
reason-revoked = hai revocato '{ $capability }'
reason-session-ended = la sessione è terminata
reason-too-long = il comando è troppo lungo
reason-malformed = la richiesta non è valida
reason-view-only = questo schermo è condiviso in sola visione: non accetta mouse né tastiera da Ponte
desktop-no-portal = il tuo desktop non offre a Ponte alcun modo di condividere lo schermo (manca il portale di condivisione)
desktop-portal-cancelled = non hai consentito la condivisione dello schermo nella finestra del sistema
desktop-portal-unanswered = nessuno ha risposto alla finestra di condivisione del sistema entro { $minutes } minuti
desktop-portal-failed = la condivisione dello schermo del sistema non è riuscita ({ $error })
desktop-no-pipewire = il servizio di condivisione dello schermo del tuo desktop (PipeWire) non è in esecuzione: lo schermo non può essere condiviso
desktop-pipewire-failed = il flusso dello schermo del sistema (PipeWire) si è interrotto ({ $error })
reason-exists = { $path } esiste già
reason-not-a-file = { $path } esiste e non è un file
reason-not-a-folder = { $path } esiste e non è una cartella
reason-unusable = percorso non utilizzabile { $path }
reason-error = { $error }

## Chat
chat-assistant = assistente: { $text }
chat-you = tu: { $text }
chat-send = Invia

## La fine
ended = Sessione terminata: { $reason }.
ended-log = Ciò che è successo è registrato in { $path }
ended-open-log = Apri il registro
ended-you = hai terminato la sessione
ended-quit-waiting = sei uscito prima che qualcuno si collegasse
ended-left-before-answer = l'assistente se n'è andato prima della tua risposta
ended-no-answer = non hai risposto in tempo
ended-connection-lost = la connessione si è interrotta ({ $error })
ended-by-operator = il gestore del relay ha chiuso la sessione: "{ $reason }"
ended-relay-lost = il relay ha smesso di rispondere (il relay, o il suo nodo del cluster, potrebbe essere fuori servizio); avvia di nuovo Ponte per una nuova sessione
ended-not-resumed = non è stato possibile ripristinare la connessione entro { $secs } s; avvia di nuovo Ponte per una nuova sessione
reconnecting = Connessione persa — riconnessione in corso… L'assistente non può fare nulla finché non torna (al massimo { $secs } s). Puoi terminare la sessione ora.
reconnected = Riconnesso: la sessione continua, con gli stessi permessi.
ended-assistant-left = l'assistente si è scollegato
ended-assistant = l'assistente ha terminato la sessione
ended-declined = la sessione è stata rifiutata
ended-flooded = il programma dell'assistente ha inviato una richiesta dopo l'altra; la sessione è stata terminata
ended-tampered = qualcuno ha manomesso la connessione tra i due computer (il relay o la rete); la sessione è stata terminata e non è stato inviato nient'altro
tampered-detected = rilevata una manomissione della connessione ({ $error }); la sessione termina
agent-failed = ponte-agent non è riuscito: { $error }

## La finestra
window-title = Ponte — assistenza remota
window-end-session = Termina la sessione
window-activity = Che cosa fa l'assistente
window-terminal = Il terminale dell'assistente (solo lettura)
window-transfers = Trasferimenti
window-chat = Chat
window-permissions = Che cosa può fare l'assistente
window-screen-viewing = Il tuo schermo è condiviso (solo visione).
window-screen-controlling = L'assistente CONTROLLA il tuo mouse e la tua tastiera.
window-since = Collegato dalle { $time }
window-ended-at = Terminata alle { $time }
window-close = Chiudi

## La barra sullo schermo condiviso
indicator-viewing = Ponte: il tuo schermo è condiviso (solo visione)
indicator-controlling = Ponte: l'assistente CONTROLLA mouse e tastiera

## Il registro
log-ready = l'ID sessione { $session } è valido per { $minutes } minuti (il codice non viene registrato)
log-assistant-connected = assistente collegato: { $peer }; si chiede che cosa può fare (cartella condivisa { $folder })
log-connected = collegato: { $peer }; consentito: { $grants }
log-question = domanda { $id }: { $text }
log-answered-yes = domanda { $id }: hai risposto sì
log-answered-no = domanda { $id }: hai risposto no
log-withdrawn = domanda { $id }: ritirata (la richiesta è terminata o non ha avuto risposta in tempo)
log-note = nota: { $text }
log-chat-assistant = chat dall'assistente: { $text }
log-chat-you = chat da te: { $text }
log-transcript-cut = terminale { $terminal } | [trascrizione interrotta: raggiunto il limite di { $mib } MiB per sessione]
log-transcript-lost = { $bytes } byte di output del terminale non registrati
log-lines-lost = { $count } righe non registrate (limite del registro { $mib } MiB)
log-ended = sessione terminata: { $reason }
log-failed = l'agente non è riuscito: { $error }

## Accesso rapido (ponte-agent quick-access)
quick-access-none = Nessun assistente può collegarsi senza codice.
quick-access-title = Questi possono collegarsi senza codice quando Ponte è aperto (vedi comunque chi si collega e decidi tu):
quick-access-assistant = { $name }, { $organisation } (solo questo assistente)
quick-access-line = { $number }. { $who } — fino al { $until }; permessi ricordati: { $grants }
quick-access-without-asking = ; consentito senza chiedere
quick-access-key = ; chiave { $fingerprint }
quick-access-expired = ; SCADUTO
quick-access-remove-hint = Per revocarne uno: ponte-agent quick-access remove NUMERO
quick-access-removed = Rimosso: { $who }. Per ricollegarsi servirà un nuovo codice.
quick-access-no-such = Non esiste il numero { $number }; vedi ponte-agent quick-access list.
quick-access-organisation = qualsiasi assistente verificato di { $organisation } (richiesto da { $name })
attempt-quick-connecting = Qualcuno si sta collegando senza codice (accesso rapido)…
attempt-quick-failed = Un collegamento senza codice non è riuscito: { $reason }
attempt-quick-left = Qualcuno si è collegato senza codice ed è uscito prima di dimostrare chi è.
attempt-resume-failed = Qualcuno ha provato a riprendere la sessione interrotta senza il suo segreto ed è stato respinto: { $reason }
attempt-not-trusted = { $peer } ha provato a collegarsi senza codice, ma non l'hai permesso (o il permesso è scaduto o è stato rimosso). È stato respinto.
question-quick-access = Permettere a { $who } di collegarsi senza codice ogni volta che avvii Ponte?
question-quick-access-until = { $days ->
    [one] Per un giorno, fino al { $until }.
   *[other] Per { $days } giorni, fino al { $until }.
}
question-quick-access-grants = Permessi che aveva alla fine: { $grants }. La prossima volta saranno già selezionati; vedrai comunque chi si collega e deciderai tu.
question-quick-access-revoke = Puoi revocarlo in qualsiasi momento: in questa finestra mentre Ponte attende, oppure con ponte-agent quick-access remove.
quick-waiting = In attesa anche di { $who }: può collegarsi senza codice (accesso rapido).
quick-granted = { $who } può ora collegarsi senza codice fino al { $until }.
quick-declined = L'accesso rapido non è stato permesso.
quick-unverified = L'assistente ha chiesto di collegarsi senza codice la prossima volta; è possibile solo per assistenti verificati.
quick-unavailable = Accesso rapido disattivato: { $error }
consent-remembered = Già selezionati dall'ultima volta (accesso rapido): { $grants }
quick-list-remove = Rimuovi
quick-list-title = Accesso rapido: chi può collegarsi senza codice
quick-without-asking-note = Vedrai comunque chi si collega e potrai terminare la sessione in qualsiasi momento.
quick-without-asking = La prossima volta consenti subito questi permessi, senza chiedermelo
quick-period-option = { $days ->
    [one] un giorno (fino al { $until })
   *[other] { $days } giorni (fino al { $until })
}
quick-period = Per quanto tempo?
question-quick-days = Scrivi un numero di giorni da 1 a 365, oppure s per la proposta; n o Invio: no.
question-quick-text = Per quanti giorni? Scrivi un numero da 1 a 365, oppure s per { $days } giorni; n o Invio: nessun accesso rapido.
quick-later = L'assistente ha chiesto di collegarsi senza codice la prossima volta. Ti verrà chiesto a sessione finita, quando nulla di suo potrà più agire su questo computer.
quick-assistant-left = L'assistente si è scollegato prima della tua risposta: l'accesso rapido non è stato attivato.
question-quick-access-after = La sessione è finita: tutto ciò che l'assistente ha eseguito tramite Ponte è stato fermato e i file di Ponte sono come prima.
quick-remember = Permessi da ricordare per la prossima volta (già selezionati; decidi comunque tu):
question-quick-how = La prossima volta: chiederti cosa può fare (con { $grants } già selezionati), oppure consentire subito { $grants } senza chiedere?
question-quick-how-text = Scrivi 1 per essere interpellato ogni volta, 2 per consentirli senza chiedere; n o Invio: nessun accesso rapido.
quick-off = L'accesso rapido è disattivato questa volta (l'agente funziona per uno script, o con --no-quick-access): anche gli assistenti autorizzati hanno bisogno dell'ID di sessione e del codice.
terminal-means-all = Con il terminale consentito, l'assistente può di fatto anche vedere lo schermo, usare tastiera e mouse, e leggere e modificare tutti i tuoi file e le impostazioni di Ponte.
own-file-changed = Mentre l'assistente aveva accesso, qualcosa di diverso da Ponte ha modificato { $path }. Decide di chi Ponte si fida: se non l'hai modificato tu, fallo controllare prima di riavviare Ponte (ponte-agent quick-access list mostra chi può collegarsi senza codice).
processes-still-running = Alcuni programmi avviati dall'assistente continuavano ad avviarne di nuovi e potrebbero essere ancora in esecuzione: riavvia il computer per essere sicuro che siano terminati.
quick-not-asked-gone = La richiesta dell'assistente di collegarsi senza codice la prossima volta non ti è stata posta: la sessione non è terminata normalmente.
quick-not-asked-running = La richiesta dell'assistente di collegarsi senza codice la prossima volta non ti è stata posta: qualcosa che ha avviato potrebbe essere ancora in esecuzione.
quick-not-asked-changed = La richiesta dell'assistente di collegarsi senza codice la prossima volta non ti è stata posta: i file di Ponte sono stati modificati mentre l'assistente aveva accesso.

## Clipboard
cap-clipboard = leggere i tuoi appunti e metterci del testo — ogni volta che l'assistente lo chiede, mai da solo
name-clipboard = Appunti
request-clipboard-get = leggere i tuoi appunti
request-clipboard-set = mettere del testo nei tuoi appunti
clipboard-read = { $count ->
    [one] l'assistente ha letto i tuoi appunti (un carattere)
   *[other] l'assistente ha letto i tuoi appunti ({ $count } caratteri)
}
clipboard-put = { $count ->
    [one] l'assistente ha messo un carattere nei tuoi appunti
   *[other] l'assistente ha messo { $count } caratteri nei tuoi appunti
}
clipboard-unavailable = gli appunti di questo desktop non sono raggiungibili: { $error }
log-clipboard-read = gli appunti letti dall'assistente: { $text }
log-clipboard-put = ciò che l'assistente ha messo negli appunti: { $text }
