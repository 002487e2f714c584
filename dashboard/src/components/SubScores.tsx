// Fit (who the lead is) and engagement (what the lead did) in score points, and a small
// centred bar per factor family: right of the axis adds points, left takes them away.
import type { ScoreComponents } from "../api/types";
import { FAMILY_COLORS, fmtSigned } from "../format";
import "./lead.css";

const FAMILY_LABELS: Record<string, string> = {
  behavioral: "Web & email",
  engagement: "Calls & demos",
  content: "Content",
  temporal: "Timing",
  interaction: "Social",
  demographic: "Company & role",
  quality: "Data quality",
  data_quality: "Data quality",
};

const FIT_FAMILIES = new Set(["demographic", "quality", "data_quality"]);

function Families({ families, scale }: { families: [string, number][]; scale: number }) {
  return (
    <ul className="families">
      {families.map(([family, points]) => {
        const width = (Math.abs(points) / scale) * 50;
        return (
          <li key={family} data-family={family}>
            <span className="fam-label" title={family}>
              {FAMILY_LABELS[family] ?? family}
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
  );
}

function Total({ name, points, title, testId }: { name: string; points: number; title: string; testId: string }) {
  return (
    <div className="sub-total" title={title}>
      <span>{name}</span>
      <span className={`num ${points >= 0 ? "up" : "down"}`} data-testid={testId}>
        {fmtSigned(points)}
      </span>
    </div>
  );
}

export function SubScores({ components }: { components: ScoreComponents }) {
  const all = Object.entries(components.families).sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]));
  const scale = Math.max(1, ...all.map(([, v]) => Math.abs(v)));
  return (
    <div className="sub-scores" data-testid="sub-scores">
      <Total name="Fit" points={components.fit} title="Points from who the lead is: company, role, data quality" testId="fit-points" />
      <Families families={all.filter(([f]) => FIT_FAMILIES.has(f))} scale={scale} />
      <Total name="Engagement" points={components.engagement} title="Points from what the lead did: visits, emails, calls, content, social" testId="engagement-points" />
      <Families families={all.filter(([f]) => !FIT_FAMILIES.has(f))} scale={scale} />
      <p className="muted caption">Points each family of features adds to the base score (negative: takes away). Base + fit + engagement = 100 × probability.</p>
    </div>
  );
}
