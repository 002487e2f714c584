export function Overview() {
  return <section><h1>Overview</h1><p className="muted">Not built yet.</p></section>;
}
