-- Reports by medium, newest first. The paper reports are about one in seven: a list of
-- them within a month (with or without a kind or status) read the month's reports of
-- both media newest first to find fifty, hundreds of rows fetched to discard most; this
-- reads only the ones it returns. See 1002 for why the index build takes the time it does.
CREATE INDEX reports_by_medium ON reports (medium, submitted_at DESC, id DESC);
