"""Area statistics and change answers as tables for people: pandas frames (the client's, the CLI's CSV) and
text (the CLI's and the demo's output)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from earthsignature.pb.snapearth.api.v1 import statistics_pb2

#: The columns of a statistics table before the classes' (hectares each, but products).
STATISTICS_COLUMNS = ("date", "products", "area_ha", "clear_ha", "cloud_ha", "nodata_ha", "uncovered_ha")


def statistics_frame(response: statistics_pb2.AreaStatisticsResponse) -> pd.DataFrame:
    """An AreaStatisticsResponse as one row per date: the area asked, its clear, clouded, no-data and uncovered
    parts, and one column per class (hectares under a clear sky)."""
    rows = []
    for day in response.dates:
        row = {"date": datetime.fromisoformat(day.date).date(), "products": len(day.product_ids),
               "area_ha": day.area_hectares, "clear_ha": day.clear_hectares, "cloud_ha": day.cloud_hectares,
               "nodata_ha": day.nodata_hectares, "uncovered_ha": day.uncovered_hectares}
        row.update({row_class.name: row_class.hectares for row_class in day.classes})
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else list(STATISTICS_COLUMNS))


def change_matrix(response: statistics_pb2.AreaChangeResponse) -> pd.DataFrame:
    """An AreaChangeResponse's transitions as a matrix: classes before down, classes after across, hectares."""
    rows = [{"before": t.before.name, "after": t.after.name, "hectares": t.hectares} for t in response.matrix]
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).pivot_table(index="before", columns="after", values="hectares", aggfunc="sum",
                                          fill_value=0.0)


def statistics_text(table: pd.DataFrame) -> str:
    """A statistics frame for a terminal: dates down, hectares across (0.01 ha: one pixel), classes present."""
    if table.empty:
        return "no map of this model in the area and period"
    fixed = ["date", "area_ha", "clear_ha", "cloud_ha", "nodata_ha", "uncovered_ha"]
    classes = [column for column in table.columns[len(STATISTICS_COLUMNS):] if table[column].sum() > 0]
    shown = table[fixed + classes].rename(columns=lambda name: name.removesuffix("_ha"))
    return shown.to_string(index=False, float_format=lambda value: f"{value:,.2f}")


def change_text(response: statistics_pb2.AreaChangeResponse) -> str:
    """A change answer for a terminal: what was compared and what not, the matrix, the transitions drawn."""
    lines = [f"{len(response.before_product_ids)} product(s) before, {len(response.after_product_ids)} after; "
             f"compared {response.compared_hectares:,.2f} ha of {response.area_hectares:,.2f}; not compared: cloud "
             f"{response.cloud_hectares:,.2f}, no data {response.nodata_hectares:,.2f}, no map "
             f"{response.no_map_hectares:,.2f}, uncovered {response.uncovered_hectares:,.2f} ha"]
    matrix = change_matrix(response)
    lines.append(matrix.to_string(float_format=lambda value: f"{value:,.2f}") if not matrix.empty
                 else "nothing could be compared")
    lines += [f"  map value {t.map_value}: {t.before.name} -> {t.after.name} {t.hectares:,.2f} ha"
              for t in response.matrix if t.map_value]
    return "\n".join(lines)
