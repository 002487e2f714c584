// Fit (who the lead is) and engagement (what the lead did) in score points, and a small
// centred bar per factor family: right of the axis adds points, left takes them away.
import type { ScoreComponents } from "../api/types";
import { FAMILY_COLORS, fmtSigned } from "../format";
import "./lead.css";

const FAMILY_LABELS: Record<string, string> = {
  behavioral: "Web & email",
  engagement: "Calls, meetings, demos",
  content: "Content",
  temporal: "Timing & recency",
  interaction: "Social & referrals",
  demographic: "Company & role",
  quality: "Data quality",
  data_quality: "Data quality",
};

const FIT_FAMILIES = new Set(["demographic", "quality", "data_quality"]);

export function SubScores({ components }: { components: ScoreComponents }) {
  const families = Object.entries(components.families).sort((a, b) => {
    const fa = FIT_FAMILIES.has(a[0]) ? 0 : 1;
    const fb = FIT_FAMILIES.has(b[0]) ? 0 : 1;
    return fa - fb || Math.abs(b[1]) - Math.abs(a[1]);
  });
  const scale = Math.max(1, ...families.map(([, v]) => Math.abs(v)));
  return (
    <div className="sub-scores" data-testid="sub-scores">
      <div className="sub-totals">
        <div className="stat" title="Points from who the lead is: company, role, data quality">
          <span className="label">Fit</span>
          <span className={`value ${components.fit >= 0 ? "up" : "down"}`} data-testid="fit-points">
            {fmtSigned(components.fit)}
          </span>
        </div>
        <div className="stat" title="Points from what the lead did: visits, emails, calls, content, social">
          <span className="label">Engagement</span>
          <span className={`value ${components.engagement >= 0 ? "up" : "down"}`} data-testid="engagement-points">
            {fmtSigned(components.engagement)}
          </span>
        </div>
      </div>
      <ul className="families">
        {families.map(([family, points]) => {
          const width = (Math.abs(points) / scale) * 50;
          return (
            <li key={family} data-family={family}>
              <span className="fam-label">
                {FAMILY_LABELS[family] ?? family}
                <span className="muted fam-kind">{FIT_FAMILIES.has(family) ? " · fit" : ""}</span>
              </span>
              <span className="fam-track" aria-hidden>
                <span className="fam-axis" />
                <span
                  className="fam-bar"
                  style={{
                    left: points >= 0 ? "50%" : `${50 - width}%`,
                    width: `${width}%`,
                    background: points >= 0 ? (FAMILY_COLORS[family] ?? "#64748b") : "#dc2626",
                  }}
                />
              </span>
              <span className={`num ${points >= 0 ? "up" : "down"}`}>{fmtSigned(points)}</span>
            </li>
          );
        })}
      </ul>
      <p className="muted caption">Points added to the base score, per family of features. Fit + engagement + base = 100 × probability.</p>
    </div>
  );
}
