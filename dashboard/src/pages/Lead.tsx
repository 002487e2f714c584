export function LeadView() {
  return <section><h1>Lead</h1><p className="muted">Not built yet.</p></section>;
}
