"""Reading benchopt's result tables (the plots of ``plots/``)."""


def final_results(df):
    """The first stored ``final_results`` of the result rows ``df`` (what an
    objective's ``save_final_results`` kept at the end of a run), or None."""
    if "final_results" not in df:
        return None
    stored = df["final_results"].dropna()
    return stored.iloc[0] if len(stored) else None
