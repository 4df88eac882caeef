"""The .ics reader: every way a calendar app writes a webinar, and every way it can fail."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.services.ics_import import MAX_OCCURRENCES, IcsEvent, parse_ics

NOW = datetime(2027, 1, 1, tzinfo=UTC)


def ics(*events: str, timezone: str = "") -> bytes:
    body = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN"]
    if timezone:
        body.append(timezone)
    for event in events:
        body += ["BEGIN:VEVENT", *event.strip().splitlines(), "END:VEVENT"]
    body.append("END:VCALENDAR")
    return ("\r\n".join(body) + "\r\n").encode()


def test_floating_time_is_the_cohorts_zone():
    result = parse_ics(
        ics("UID:1\nSUMMARY:W\nDTSTART:20270201T170000\nURL:https://m.example.org/a"),
        "Europe/Athens",
        NOW,
    )
    assert [e.starts_at for e in result.events] == [datetime(2027, 2, 1, 15, 0, tzinfo=UTC)]
    assert result.events[0].duration_min == 60  # no end: an hour


def test_utc_time_and_duration():
    result = parse_ics(
        ics(
            "UID:1\nSUMMARY:W\nDTSTART:20270201T160000Z\nDURATION:PT90M\nLOCATION:https://m.example.org/b"
        ),
        "Europe/Rome",
        NOW,
    )
    (event,) = result.events
    assert event.starts_at == datetime(2027, 2, 1, 16, 0, tzinfo=UTC)
    assert event.duration_min == 90 and event.join_url == "https://m.example.org/b"


def test_known_tzid_without_vtimezone_block():
    result = parse_ics(
        ics(
            "UID:1\nSUMMARY:W\nDTSTART;TZID=Europe/Sofia:20270701T170000\nURL:https://x.example.org"
        ),
        "Europe/Riga",
        NOW,
    )
    assert result.events[0].starts_at == datetime(2027, 7, 1, 14, 0, tzinfo=UTC)  # EEST


def test_endless_weekly_series_is_cut_and_said():
    result = parse_ics(
        ics(
            "UID:s\nSUMMARY:Every Monday\nDTSTART;TZID=Europe/Rome:20270104T180000\n"
            "RRULE:FREQ=WEEKLY;BYDAY=MO\nURL:https://x.example.org"
        ),
        "Europe/Rome",
        NOW,
    )
    assert len(result.events) == MAX_OCCURRENCES
    # 18:00 in Rome all along: 17:00 UTC in winter, 16:00 UTC after 28 March.
    hours = {e.starts_at.hour for e in result.events}
    assert hours == {17, 16}
    (note,) = result.notes
    assert note.event == "Every Monday" and "only the first" in note.reason


def test_moved_occurrence_and_cancelled_event():
    result = parse_ics(
        ics(
            "UID:s\nSUMMARY:Series\nDTSTART;TZID=Europe/Riga:20270104T170000\n"
            "RRULE:FREQ=WEEKLY;COUNT=3\nURL:https://x.example.org",
            # The second date moved to Tuesday.
            "UID:s\nSUMMARY:Series (moved)\nRECURRENCE-ID;TZID=Europe/Riga:20270111T170000\n"
            "DTSTART;TZID=Europe/Riga:20270112T170000\nURL:https://x.example.org",
            "UID:c\nSUMMARY:Called off\nSTATUS:CANCELLED\nDTSTART:20270301T100000Z\n"
            "URL:https://x.example.org",
        ),
        "Europe/Riga",
        NOW,
    )
    assert [e.starts_at.day for e in result.events] == [4, 12, 18]
    assert [n.event for n in result.notes] == ["Called off"]


def test_problems_name_the_event():
    result = parse_ics(
        ics(
            "UID:a\nSUMMARY:No link\nDTSTART:20270201T100000Z",
            "UID:b\nSUMMARY:Backwards\nDTSTART:20270201T100000Z\nDTEND:20270201T090000Z\n"
            "URL:https://x.example.org",
            "UID:c\nSUMMARY:All day\nDTSTART;VALUE=DATE:20270201\nURL:https://x.example.org",
            "UID:d\nSUMMARY:Bad rule\nDTSTART:20270201T100000Z\nRRULE:FREQ=SOMETIMES\n"
            "URL:https://x.example.org",
            "UID:e\nSUMMARY:Old\nDTSTART:20261201T100000Z\nURL:https://x.example.org",
            "UID:f-no-summary\nDTSTART:2027-02-01\nURL:https://x.example.org",
            "UID:g\nSUMMARY:Fine\nDTSTART:20270201T100000Z\nURL:https://x.example.org",
        ),
        "Europe/Riga",
        NOW,
    )
    assert [e.title for e in result.events] == ["Fine"]
    problems = {p.event: p.reason for p in result.errors}
    assert set(problems) == {"No link", "Backwards", "All day", "Bad rule", "Old", "f-no-summary"}
    assert "join link" in problems["No link"]
    assert "ends before it starts" in problems["Backwards"]
    assert "all-day" in problems["All day"]
    assert "RRULE" in problems["Bad rule"]
    assert "past" in problems["Old"]
    assert "start time" in problems["f-no-summary"]


def test_a_file_that_is_not_a_calendar():
    for data in (b"", b"hello", b"\x89PNG\r\n\x1a\n\x00\x00", ics()):
        result = parse_ics(data, "Europe/Riga", NOW)
        assert result.file_error and not result.events
        assert result.errors[0].event == ""


def test_too_large():
    result = parse_ics(b"x" * 1_000_001, "Europe/Riga", NOW)
    assert result.file_error and "1 MB" in result.errors[0].reason


def test_event_round_trip():
    event = IcsEvent("W", datetime(2027, 2, 1, 15, tzinfo=UTC), 60, "https://x.example.org")
    assert IcsEvent.from_json(event.to_json()) == event
