# Ponte agent — to, co czyta klient. Polski.

## Oczekiwanie na asystenta
ready-title = Podaj te dane swojemu asystentowi:
ready-session = ID sesji:
ready-code = Kod:
ready-valid = { $minutes ->
    [one] Są ważne przez minutę. Nikt nie połączy się bez obu.
    [few] Są ważne przez { $minutes } minuty. Nikt nie połączy się bez obu.
   *[other] Są ważne przez { $minutes } minut. Nikt nie połączy się bez obu.
}
ready-quit = Naciśnij Ctrl-C, aby zakończyć.
ready-instruction = Przeczytaj asystentowi przez telefon ID sesji i kod. Nikt nie połączy się bez obu.
ready-countdown = Ważne jeszcze { $time }
ready-copy = Kopiuj
ready-copied = Skopiowano

## Próby połączenia
attempt-connecting = Ktoś łączy się z Twoim ID sesji…
attempt-wrong-code = { $left ->
    [one] Ktoś podał błędny kod — została jedna próba.
    [few] Ktoś podał błędny kod — zostały { $left } próby.
   *[other] Ktoś podał błędny kod — zostało { $left } prób.
}
attempt-abandoned = Ktoś połączył się z Twoim ID sesji i wyszedł bez kodu.
attempt-failed = Próba połączenia nie powiodła się: { $reason }
attempt-turned-away = Ktoś inny próbował połączyć się z Twoim ID sesji; przekaźnik go odrzucił ({ $reason }).
attempt-burned = Kod został zbyt wiele razy podany błędnie i jest już nieważny. Oto nowy.
attempt-expired = Kod wygasł nieużyty. Oto nowy.

## Kto pyta
peer-verified = zweryfikowany: { $name }, { $organisation }
peer-verified-claims = zweryfikowany: { $name }, { $organisation } (jego certyfikat nazywa ją { $claimed })
peer-unverified = NIEZWERYFIKOWANY ({ $reason }); odcisk klucza { $fingerprint }
unverified-title = NIEZWERYFIKOWANY ASYSTENT
unverified-body = Nikt, komu ufasz, nie poręcza za tę osobę ({ $reason }).
unverified-stop = Jeśli to nie Ty zadzwoniłeś do tej firmy, zakończ sesję teraz.
unverified-stop-text = Jeśli to nie Ty zadzwoniłeś do tej firmy, wpisz teraz 'end'.
key-fingerprint = Odcisk klucza: { $fingerprint }
cert-missing = brak certyfikatu
cert-malformed = certyfikat jest uszkodzony
cert-bad-text = nazwa w certyfikacie jest niedopuszczalna
cert-unknown-issuer = wystawiony przez organizację, której ten komputer nie ufa
cert-bad-signature = podpis organizacji na certyfikacie jest nieprawidłowy
cert-key-mismatch = certyfikat należy do innego klucza
cert-expired = certyfikat wygasł
cert-not-yet-valid = certyfikat nie jest jeszcze ważny

## Zgoda
consent-connected = Asystent się połączył.
consent-files = Pliki: udostępniony jest folder { $folder }. Bez terminala o pliki ukryte, miejsca, z których uruchamiają się programy, i wszystko poza nim pytamy osobno; terminal sięga do wszystkich Twoich plików.
consent-what = Co może robić?
consent-what-text = Co może robić? (y lub n; 'end' kończy sesję)
consent-allow-cap = Pozwolić { $what }?
consent-allow-selected = Zezwól na wybrane
consent-deny = Odmów
cap-terminal = uruchamiać polecenia i terminal jako Ty — czyli robić wszystko, co Ty możesz na tym komputerze: wszystkie Twoje pliki, ekran, klawiatura i mysz, ustawienia Ponte
cap-upload = umieszczać pliki na tym komputerze
cap-download = kopiować pliki z tego komputera (inaczej pytamy o każdy plik)
cap-info = odczytywać informacje o systemie (system, procesor, pamięć, dyski, sieć)
cap-chat = rozmawiać z Tobą na czacie
cap-screen = widzieć Twój ekran
cap-control = używać Twojej myszy i klawiatury
name-terminal = Terminal
name-upload = Umieszczanie plików
name-download = Kopiowanie plików
name-info = Informacje o systemie
name-chat = Czat
name-screen = Podgląd ekranu
name-control = Mysz i klawiatura
grants-nothing = nic
connected = Połączono: { $peer }.
allowed = Dozwolone: { $grants }.
commands-hint = Wpisz 'revoke NAZWA', 'grant NAZWA', 'chat TEKST' lub 'end'.
commands-help = Polecenia: revoke NAZWA, grant NAZWA (terminal, upload, download, info, screen, control), chat TEKST, end

## Pytania
question-list = { $count ->
    [one] Asystent chce ZOBACZYĆ ZAWARTOŚĆ folderu { $path } na tym komputerze (nazwę jego jedynego elementu).
    [few] Asystent chce ZOBACZYĆ ZAWARTOŚĆ folderu { $path } na tym komputerze (nazwy, rozmiary i daty jego { $count } elementów).
   *[other] Asystent chce ZOBACZYĆ ZAWARTOŚĆ folderu { $path } na tym komputerze (nazwy, rozmiary i daty jego { $count } elementów).
}
question-copy-file = Asystent chce SKOPIOWAĆ plik { $path } ({ $size }) Z tego komputera.
question-copy-folder = { $files ->
    [one] Asystent chce SKOPIOWAĆ folder { $path } (jeden plik, { $size }) Z tego komputera.
    [few] Asystent chce SKOPIOWAĆ folder { $path } ({ $files } pliki, { $size }) Z tego komputera.
   *[other] Asystent chce SKOPIOWAĆ folder { $path } ({ $files } plików, { $size }) Z tego komputera.
}
question-hidden-items = { $count ->
    [one] Zawiera jeden ukryty element.
    [few] Zawiera { $count } ukryte elementy.
   *[other] Zawiera { $count } ukrytych elementów.
}
question-put-file = Asystent chce UMIEŚCIĆ plik { $path } ({ $size }) NA tym komputerze.
question-put-folder = { $files ->
    [one] Asystent chce UMIEŚCIĆ folder { $path } (jeden plik, { $size }) NA tym komputerze.
    [few] Asystent chce UMIEŚCIĆ folder { $path } ({ $files } pliki, { $size }) NA tym komputerze.
   *[other] Asystent chce UMIEŚCIĆ folder { $path } ({ $files } plików, { $size }) NA tym komputerze.
}
question-creates = Zostanie utworzony folder { $folder }.
question-relay-changed = UWAGA: przekaźnik { $relay } przedstawia INNY certyfikat niż wcześniej (wcześniej: { $known }, teraz: { $seen }). Ktoś może przechwytywać połączenie. Kontynuuj tylko wtedy, gdy operator przekaźnika potwierdził nowy odcisk.
question-allow = Zezwolić?
question-allow-button = Zezwól
question-allow-text = Zezwolić? [t/N]
question-changed = Pytanie właśnie się zmieniło. Przeczytaj je i odpowiedz ponownie.
question-answer-yn = Odpowiedz t (tak) lub n (nie).
question-still-asking = (czeka na odpowiedź) { $question }
question-withdrawn = (To pytanie zostało wycofane: prośba się zakończyła albo czekała zbyt długo.)
why-not-granted = nie zezwoliłeś na to na całą sesję
why-outside = jest POZA udostępnionym folderem
why-hidden = jest UKRYTE (w takich miejscach są ustawienia, hasła lub klucze)
why-startup = programy stamtąd URUCHAMIAJĄ SIĘ SAME lub działają jako polecenia
why-replaces = ZASTĘPUJE to, co tam teraz jest
why-program = to SAM PONTE lub jego ustawienia: decydują, komu Ponte ufa
answer-yes-words = t, tak, y, yes
answer-no-words = n, nie, no

## Co robi asystent
command-started = uruchomiono polecenie: { $command } (terminal { $terminal })
command-finished = polecenie zakończone ({ $status }): { $command }
terminal-opened = otwarto terminal { $terminal } ({ $shell }); tutaj widać, co wpisuje asystent
terminal-closed = zamknięto terminal { $terminal }
terminal-entered = terminal { $terminal }: asystent wpisał: { $line }
terminal-typed = terminal { $terminal }: asystent nacisnął klawisze: { $keys } — terminal pokazał: { $line }
terminal-typed-unshown = terminal { $terminal }: asystent nacisnął klawisze: { $keys } (terminal tego nie pokazał)
sending = wysyłanie { $path }
sent = wysłano { $path } ({ $what })
sent-hidden-left-out = { $count ->
    [one] pominięto jeden ukryty element
    [few] pominięto { $count } ukryte elementy
   *[other] pominięto { $count } ukrytych elementów
}
receiving = odbieranie { $path }
received = odebrano { $path } ({ $what }, suma kontrolna sprawdzona)
files-and-size = { $files ->
    [one] jeden plik, { $size }
    [few] { $files } pliki, { $size }
   *[other] { $files } plików, { $size }
}
listed = { $count ->
    [one] pokazano folder { $path } (jeden element)
    [few] pokazano folder { $path } ({ $count } elementy)
   *[other] pokazano folder { $path } ({ $count } elementów)
}
info-read = odczytano informacje o systemie
screen-started = rozpoczęto udostępnianie ekranu ({ $monitor } { $width }×{ $height })
screen-ended = zakończono udostępnianie ekranu: { $reason }
screen-ended-closed = asystent zamknął podgląd ekranu
screen-ended-failed = strumień ekranu został przerwany ({ $error })
system-dialog = System zapyta teraz we własnym oknie (nie Ponte), czy udostępnić ekran. Tak ma być: wybierz ekran i „Udostępnij”, aby asystent go widział. Włącz „Zdalne sterowanie” tylko wtedy, gdy asystent może też używać myszy i klawiatury. Anuluj, aby nic nie udostępniać.
screen-view-only = twój pulpit udostępnia ekran tylko do podglądu: asystent nie może używać myszy ani klawiatury
screen-monitor = asystent przełączył się na monitor { $monitor } ({ $width }×{ $height })
control-using = asystent używa Twojej myszy i klawiatury
control-paused = { $count ->
    [one] poruszyłeś myszą: wstrzymano jedno zdarzenie asystenta
    [few] poruszyłeś myszą: wstrzymano { $count } zdarzenia asystenta
   *[other] poruszyłeś myszą: wstrzymano { $count } zdarzeń asystenta
}
control-dropped = { $count ->
    [one] odrzucono jedno zdarzenie asystenta: sterowanie nie jest dozwolone
    [few] odrzucono { $count } zdarzenia asystenta: sterowanie nie jest dozwolone
   *[other] odrzucono { $count } zdarzeń asystenta: sterowanie nie jest dozwolone
}
control-view-only = { $count ->
    [one] odrzucono jedno zdarzenie asystenta: ten ekran jest udostępniony tylko do podglądu
    [few] odrzucono { $count } zdarzenia asystenta: ten ekran jest udostępniony tylko do podglądu
   *[other] odrzucono { $count } zdarzeń asystenta: ten ekran jest udostępniony tylko do podglądu
}
input-done = działania asystenta: { $what }
input-paused = poruszyłeś myszą: działania asystenta wstrzymane ({ $what })
input-pointer = wskaźnik na ({ $x }, { $y })
input-click = kliknięcie przycisku { $button }
input-key = klawisz { $key }
input-release = zwolniono klawisz lub przycisk
input-typed = wpisano "{ $text }"
request-exec = uruchomić polecenie: { $command }
request-shell = otworzyć terminal
request-get = skopiować { $path } z tego komputera
request-list = zobaczyć zawartość folderu { $path }
request-put = umieścić { $path } na tym komputerze ({ $what })
request-info = odczytać informacje o systemie
request-screen = widzieć ekran
request-input = używać myszy i klawiatury: { $what }
refused = odmówiono: { $what } ({ $reason })
stopped = zatrzymano: { $what } ({ $reason })
failed = nie powiodło się: { $what } ({ $reason })
refused-count = Dotąd odmówiono { $count } prośbom asystenta (nie wszystkie są wymienione)
permissions-changed = zmieniono uprawnienia: teraz dozwolone { $grants }
chat-too-long = wiadomość od asystenta była zbyt długa i została odrzucona
chat-too-fast = asystent wysyła wiadomości zbyt szybko: niektóre nie są pokazywane
processes-ended = { $count ->
    [one] zakończono jeden proces pozostawiony przez asystenta
    [few] zakończono { $count } procesy pozostawione przez asystenta
   *[other] zakończono { $count } procesów pozostawionych przez asystenta
}
more-characters = … (jeszcze { $count } znaków)
not-taken = Nie przyjęto: asystent przed chwilą pisał lub klikał na tym komputerze. Jeśli to byłeś Ty, poczekaj chwilę i spróbuj ponownie.
nobody-connected = Nikt jeszcze nie jest połączony.
first-relay = Pierwsze połączenie z przekaźnikiem { $relay }; zapamiętano jego odcisk { $fingerprint }
accepted-relay = Przyjęto nowy odcisk przekaźnika { $fingerprint }
log-unwritable = Nie można zapisać dziennika działań { $path }: { $error }

## Dlaczego prośbie odmówiono lub ją zatrzymano
reason-not-allowed = nie zezwoliłeś na '{ $capability }'
reason-declined = odmówiłeś
reason-cannot-ask = tu nie można nikogo zapytać (agent działa dla skryptu)
reason-busy = było zbyt wiele otwartych pytań
reason-no-answer = nie odpowiedziałeś
reason-revoked = cofnąłeś '{ $capability }'
reason-session-ended = sesja się zakończyła
reason-too-long = polecenie jest zbyt długie
reason-malformed = prośba jest nieprawidłowa
reason-view-only = ten ekran jest udostępniony tylko do podglądu: nie przyjmuje od Ponte myszy ani klawiatury
desktop-no-portal = twój pulpit nie daje Ponte żadnej możliwości udostępnienia ekranu (brak portalu udostępniania)
desktop-portal-cancelled = nie zezwolono na udostępnienie ekranu w oknie systemu
desktop-portal-unanswered = nikt nie odpowiedział w oknie udostępniania systemu w ciągu { $minutes } min
desktop-portal-failed = udostępnianie ekranu przez system nie powiodło się ({ $error })
desktop-no-pipewire = usługa udostępniania ekranu twojego pulpitu (PipeWire) nie działa, więc nie można udostępnić ekranu
desktop-pipewire-failed = strumień ekranu systemu (PipeWire) został przerwany ({ $error })
reason-exists = { $path } już istnieje
reason-not-a-file = { $path } istnieje i nie jest plikiem
reason-not-a-folder = { $path } istnieje i nie jest folderem
reason-unusable = nieprzydatna ścieżka { $path }
reason-error = { $error }

## Czat
chat-assistant = asystent: { $text }
chat-you = Ty: { $text }
chat-send = Wyślij

## Koniec
ended = Sesja zakończona: { $reason }.
ended-log = Przebieg jest zapisany w { $path }
ended-open-log = Otwórz dziennik
ended-you = zakończyłeś sesję
ended-quit-waiting = zakończyłeś, zanim ktoś się połączył
ended-left-before-answer = asystent wyszedł przed Twoją odpowiedzią
ended-no-answer = nie odpowiedziałeś na czas
ended-connection-lost = połączenie zostało przerwane ({ $error })
ended-by-operator = operator przekaźnika zakończył sesję: „{ $reason }”
ended-relay-lost = przekaźnik przestał odpowiadać (przekaźnik lub jego węzeł klastra może nie działać); uruchom Ponte ponownie, aby rozpocząć nową sesję
ended-not-resumed = nie udało się przywrócić połączenia w ciągu { $secs } s; uruchom Ponte ponownie, aby rozpocząć nową sesję
reconnecting = Utracono połączenie — ponowne łączenie… Asystent nie może nic zrobić, dopóki połączenie nie wróci (najwyżej { $secs } s). Możesz teraz zakończyć sesję.
reconnected = Połączono ponownie: sesja trwa dalej, z tymi samymi uprawnieniami.
ended-assistant-left = asystent się rozłączył
ended-assistant = asystent zakończył sesję
ended-declined = sesja została odrzucona
ended-flooded = program asystenta wysyłał żądanie za żądaniem; sesja została zakończona
ended-tampered = ktoś ingerował w połączenie między dwoma komputerami (przekaźnik lub sieć); sesja została zakończona i nic więcej nie zostało wysłane
tampered-detected = wykryto ingerencję w połączenie ({ $error }); sesja zostaje zakończona
agent-failed = ponte-agent nie powiódł się: { $error }

## Okno
window-title = Ponte — zdalna pomoc
window-end-session = Zakończ sesję
window-activity = Co robi asystent
window-terminal = Terminal asystenta (tylko do odczytu)
window-transfers = Przesyłanie
window-chat = Czat
window-permissions = Co może robić asystent
window-screen-viewing = Twój ekran jest udostępniany (tylko podgląd).
window-screen-controlling = Asystent STERUJE Twoją myszą i klawiaturą.
window-since = Połączono o { $time }
window-ended-at = Zakończono o { $time }
window-close = Zamknij

## Pasek na udostępnianym ekranie
indicator-viewing = Ponte: Twój ekran jest udostępniany (tylko podgląd)
indicator-controlling = Ponte: asystent STERUJE myszą i klawiaturą

## Dziennik
log-ready = ID sesji { $session } jest ważne przez { $minutes } min (kod nie jest zapisywany)
log-assistant-connected = połączył się asystent: { $peer }; pytanie, co może robić (udostępniony folder { $folder })
log-connected = połączono: { $peer }; dozwolone: { $grants }
log-question = pytanie { $id }: { $text }
log-answered-yes = pytanie { $id }: odpowiedziałeś tak
log-answered-no = pytanie { $id }: odpowiedziałeś nie
log-withdrawn = pytanie { $id }: wycofane (prośba się zakończyła lub nie było odpowiedzi na czas)
log-note = uwaga: { $text }
log-chat-assistant = czat od asystenta: { $text }
log-chat-you = czat od Ciebie: { $text }
log-transcript-cut = terminal { $terminal } | [zapis przerwany: osiągnięto limit { $mib } MiB na sesję]
log-transcript-lost = nie zapisano { $bytes } bajtów wyjścia terminala
log-lines-lost = nie zapisano { $count } wierszy (limit dziennika { $mib } MiB)
log-ended = sesja zakończona: { $reason }
log-failed = agent nie powiódł się: { $error }

## Szybki dostęp (ponte-agent quick-access)
quick-access-none = Żaden asystent nie może połączyć się bez kodu.
quick-access-title = Ci mogą połączyć się bez kodu, gdy Ponte jest otwarte (nadal widzisz, kto się łączy, i decydujesz):
quick-access-assistant = { $name }, { $organisation } (tylko ten asystent)
quick-access-line = { $number }. { $who } — do { $until }; zapamiętane uprawnienia: { $grants }
quick-access-without-asking = ; dozwolone bez pytania
quick-access-key = ; klucz { $fingerprint }
quick-access-expired = ; WYGASŁO
quick-access-remove-hint = Aby cofnąć: ponte-agent quick-access remove NUMER
quick-access-removed = Usunięto: { $who }. Do ponownego połączenia potrzebny będzie nowy kod.
quick-access-no-such = Nie ma numeru { $number }; zobacz ponte-agent quick-access list.
quick-access-organisation = każdy zweryfikowany asystent firmy { $organisation } (prośba od: { $name })
attempt-quick-connecting = Ktoś łączy się bez kodu (szybki dostęp)…
attempt-quick-failed = Połączenie bez kodu nie powiodło się: { $reason }
attempt-quick-left = Ktoś połączył się bez kodu i rozłączył, zanim pokazał, kim jest.
attempt-resume-failed = Ktoś próbował przejąć przerwaną sesję bez jej sekretu i został odrzucony: { $reason }
attempt-not-trusted = { $peer } próbował połączyć się bez kodu, ale nie zezwolono na to (albo zgoda wygasła lub została usunięta). Odrzucono.
question-quick-access = Pozwolić, aby { $who } łączył się bez kodu za każdym razem, gdy uruchomisz Ponte?
question-quick-access-until = { $days ->
    [one] Przez jeden dzień, do { $until }.
   *[other] Przez { $days } dni, do { $until }.
}
question-quick-access-grants = Uprawnienia, które miał na końcu: { $grants }. Następnym razem będą wstępnie zaznaczone; nadal zobaczysz, kto się łączy, i zdecydujesz.
question-quick-access-revoke = Możesz to cofnąć w każdej chwili: w tym oknie, gdy Ponte czeka, albo poleceniem ponte-agent quick-access remove.
quick-waiting = Czekam też na: { $who } — może połączyć się bez kodu (szybki dostęp).
quick-granted = { $who } może teraz łączyć się bez kodu do { $until }.
quick-declined = Nie zezwolono na szybki dostęp.
quick-unverified = Asystent poprosił o połączenie bez kodu następnym razem; jest to możliwe tylko dla zweryfikowanych asystentów.
quick-unavailable = Szybki dostęp wyłączony: { $error }
consent-remembered = Wstępnie zaznaczone z ostatniego razu (szybki dostęp): { $grants }
quick-list-remove = Usuń
quick-list-title = Szybki dostęp: kto może połączyć się bez kodu
quick-without-asking-note = Nadal zobaczysz, kto się łączy, i w każdej chwili możesz zakończyć sesję.
quick-without-asking = Następnym razem od razu zezwól na te uprawnienia, bez pytania mnie
quick-period-option = { $days ->
    [one] jeden dzień (do { $until })
   *[other] { $days } dni (do { $until })
}
quick-period = Na jak długo?
question-quick-days = Wpisz liczbę dni od 1 do 365 albo t, aby przyjąć propozycję; n lub Enter: nie.
question-quick-text = Na ile dni? Wpisz liczbę od 1 do 365 albo t dla { $days } dni; n lub Enter: bez szybkiego dostępu.
quick-later = Asystent poprosił o łączenie się następnym razem bez kodu. Zapytamy Cię o to po zakończeniu sesji, gdy nic, co uruchomił, nie będzie już mogło działać na tym komputerze.
quick-assistant-left = Asystent rozłączył się, zanim odpowiedziałeś: szybki dostęp nie został ustawiony.
question-quick-access-after = Sesja się zakończyła: wszystko, co asystent uruchomił przez Ponte, zostało zatrzymane, a pliki Ponte są takie jak przedtem.
quick-remember = Uprawnienia do zapamiętania na następny raz (wstępnie zaznaczone; nadal decydujesz Ty):
question-quick-how = Następnym razem: pytać Cię, co może robić (z zaznaczonymi: { $grants }), czy od razu zezwolić na { $grants } bez pytania?
question-quick-how-text = Wpisz 1, aby za każdym razem decydować, 2, aby zezwalać bez pytania; n lub Enter: bez szybkiego dostępu.
quick-off = Szybki dostęp jest tym razem wyłączony (agent działa dla skryptu albo z --no-quick-access): również asystenci, którym na to zezwolono, potrzebują ID sesji i kodu.
terminal-means-all = Gdy terminal jest dozwolony, asystent może w praktyce także widzieć Twój ekran, używać klawiatury i myszy oraz czytać i zmieniać wszystkie Twoje pliki i ustawienia Ponte.
own-file-changed = Gdy asystent miał dostęp, coś innego niż Ponte zmieniło { $path }. Od tego zależy, komu Ponte ufa: jeśli to nie Ty to zmieniłeś, zleć sprawdzenie, zanim znowu uruchomisz Ponte (ponte-agent quick-access list pokazuje, kto może łączyć się bez kodu).
processes-still-running = Niektóre programy uruchomione przez asystenta wciąż uruchamiały nowe i mogą nadal działać: uruchom komputer ponownie, aby mieć pewność, że zostały zakończone.
quick-not-asked-gone = Prośba asystenta o łączenie się następnym razem bez kodu nie została Ci przedstawiona: sesja nie zakończyła się normalnie.
quick-not-asked-running = Prośba asystenta o łączenie się następnym razem bez kodu nie została Ci przedstawiona: coś, co uruchomił, może nadal działać.
quick-not-asked-changed = Prośba asystenta o łączenie się następnym razem bez kodu nie została Ci przedstawiona: pliki Ponte zostały zmienione, gdy asystent miał dostęp.

## Clipboard
cap-clipboard = odczytywać Twój schowek i umieszczać w nim tekst — za każdym razem na prośbę asystenta, nigdy samoczynnie
name-clipboard = Schowek
request-clipboard-get = odczytać Twój schowek
request-clipboard-set = umieścić tekst w Twoim schowku
clipboard-read = { $count ->
    [one] asystent odczytał Twój schowek (jeden znak)
    [few] asystent odczytał Twój schowek ({ $count } znaki)
   *[other] asystent odczytał Twój schowek ({ $count } znaków)
}
clipboard-put = { $count ->
    [one] asystent umieścił w Twoim schowku jeden znak
    [few] asystent umieścił w Twoim schowku { $count } znaki
   *[other] asystent umieścił w Twoim schowku { $count } znaków
}
clipboard-unavailable = schowek tego pulpitu jest niedostępny: { $error }
log-clipboard-read = schowek odczytany przez asystenta: { $text }
log-clipboard-put = tekst umieszczony przez asystenta w schowku: { $text }
