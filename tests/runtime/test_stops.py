from runtime.stops import StopScanner


def scan(pieces: list[str], stops: list[str]) -> tuple[list[str], bool]:
    scanner = StopScanner(iter(pieces), stops)
    return list(scanner), scanner.stopped


def test_stop_split_across_pieces_is_cut_before_it() -> None:
    out, stopped = scan(["Hello wo", "rld. ", "END", "ignored"], ["d. E"])
    assert "".join(out) == "Hello worl" and stopped


def test_partial_match_that_never_completes_is_released() -> None:
    out, stopped = scan(["abc<", "/x", "yz"], ["</s>"])
    assert "".join(out) == "abc</xyz" and not stopped
    assert out[0] == "abc"  # "<" was held back until it could no longer start "</s>"


def test_no_stops_passes_pieces_through() -> None:
    assert scan(["a", "b"], []) == (["a", "b"], False)


def test_earliest_of_several_stops_wins() -> None:
    out, stopped = scan(["one two three"], ["three", "two"])
    assert "".join(out) == "one " and stopped
