"""Clip times as `mm:ss`, the form the ground truth and the reports use."""


def mmss(sec: float) -> str:
    """Seconds as mm:ss (rounded to the second; minutes grow past 59)."""
    m, s = divmod(int(round(max(0.0, float(sec)))), 60)
    return f"{m:02d}:{s:02d}"
