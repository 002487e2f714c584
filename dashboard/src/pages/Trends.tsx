export function TrendsView() {
  return <section><h1>Trends</h1><p className="muted">Not built yet.</p></section>;
}
