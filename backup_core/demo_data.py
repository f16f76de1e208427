"""The demo data: a deterministic equipment-management database (the reference application's shape).

``seed_demo`` writes it on the embedded server's first start (``embedded.py``)
and wherever tests and benchmarks want realistic documents:
``Equipment`` (150 documents with nested sub-documents, arrays, dates,
decimals, missing fields, a few reordered fields) and
``Equipment_select_options`` (the choices of its drop-downs).
``demo_equipment`` gives any number of such documents without writing them.
"""

from __future__ import annotations

import datetime as dt
import random
import struct
from decimal import Decimal
from typing import Any

EQUIPMENT = "Equipment"
SELECT_OPTIONS = "Equipment_select_options"

_CATEGORIES = [
    ("microscope", "Microscope"), ("centrifuge", "Centrifuge"), ("balance", "Balance"),
    ("pipette", "Pipette"), ("incubator", "Incubator"), ("freezer", "Freezer"),
    ("spectrometer", "Spectrometer"), ("laptop", "Laptop"), ("printer_3d", "3D printer"),
    ("power_tool", "Power tool"),
]
_STATUSES = [
    ("in_service", "In service"), ("in_repair", "In repair"), ("on_loan", "On loan"),
    ("reserved", "Reserved"), ("retired", "Retired"), ("lost", "Lost"),
]
_CONDITIONS = [("new", "New"), ("good", "Good"), ("fair", "Fair"), ("poor", "Poor"), ("broken", "Broken")]
_BUILDINGS = [
    ("A", "Bâtiment A – Chimie"), ("B", "Building B – Biology"), ("C", "Gebäude C – Physik"),
    ("D", "D棟 – 材料科学"), ("E", "Edificio E – Taller"), ("W", "Warehouse"),
]
_DEPARTMENTS = [
    ("chem", "Chemistry"), ("bio", "Biology"), ("phys", "Physics"), ("mat", "Materials science"),
    ("it", "IT services"), ("ws", "Workshop"), ("med", "Médecine"), ("admin", "Administration"),
]
_MAINTENANCE = [
    ("calibration", "Calibration"), ("inspection", "Safety inspection"), ("repair", "Repair"),
    ("cleaning", "Cleaning"), ("firmware", "Firmware update"),
]
_UNITS = [("pcs", "pieces"), ("set", "set"), ("box", "box"), ("kit", "kit"), ("pair", "pair")]

_MAKERS = {
    "microscope": [("Zeiss", "Axio"), ("Olympus", "CX"), ("Nikon", "Eclipse"), ("Keyence 基恩士", "VHX")],
    "centrifuge": [("Eppendorf", "5425"), ("Thermo Fisher", "Sorvall"), ("Hettich", "Rotina")],
    "balance": [("Mettler-Toledo", "XPR"), ("Sartorius", "Cubis"), ("Ohaus", "Explorer")],
    "pipette": [("Eppendorf", "Research plus"), ("Gilson", "Pipetman"), ("Sartorius", "Tacta")],
    "incubator": [("Binder", "CB"), ("Memmert", "IN"), ("Thermo Fisher", "Heracell")],
    "freezer": [("Liebherr", "LGT"), ("PHCbi", "VIP ECO"), ("Arctiko", "ULUF")],
    "spectrometer": [("Agilent", "Cary"), ("Shimadzu 島津", "UV"), ("Bruker", "Alpha")],
    "laptop": [("Lenovo", "ThinkPad T"), ("Dell", "Latitude"), ("Apple", "MacBook Pro")],
    "printer_3d": [("Prusa", "MK"), ("Ultimaker", "S"), ("Bambu Lab", "X1")],
    "power_tool": [("Bosch", "GSR"), ("Makita", "DHP"), ("Hilti", "SF"), ("Festool", "T")],
}
_NOUNS = {
    "microscope": ["microscope", "Mikroskop", "顕微鏡"], "centrifuge": ["centrifuge", "Centrifugeuse réfrigérée"],
    "balance": ["analytical balance", "Präzisionswaage"], "pipette": ["pipette set 🧪", "multichannel pipette"],
    "incubator": ["CO₂ incubator", "incubateur"], "freezer": ["-80 °C freezer", "Tiefkühlschrank"],
    "spectrometer": ["UV-Vis spectrometer", "分光光度計"], "laptop": ["laptop 💻", "portátil"],
    "printer_3d": ["3D printer", "imprimante 3D"], "power_tool": ["cordless drill", "Akku-Schrauber 🔧"],
}
_TAGS = ["shared", "critical", "calibrated", "GMP", "portable", "loaner", "fragile", "höhere Priorität",
         "需要培训", "🔥 hot", "teaching", "reserved-weekends"]
_PEOPLE = ["Ana Müller", "José Álvarez", "Zoë Chen", "Łukasz Nowak", "佐藤 花子", "Ravi Iyer",
           "Siobhán O'Neill", "Jean-François Côté", None]
_NOTES = [
    "Bench 3, next to the fume hood.",
    "Handle with care — fragile optics.",
    "Bought with grant ANR-21-CE45, see invoice #4411.",
    "Voir le manuel d'utilisation (français).",
    "需要每月校准一次。",
    "Works fine 👍",
]
_MAINT_NOTES = ["OK", "Replaced fuse", "Recalibrated, deviation 0.02 %", "Filter changed; next in 6 months",
                "Nettoyage complet", "Firmware 2.4.1 → 2.5.0", ""]


def _oid(rng: random.Random, when: dt.datetime, counter: int) -> Any:
    """A reproducible ObjectId whose timestamp part is ``when``."""
    from bson import ObjectId

    seconds = int(when.replace(tzinfo=dt.timezone.utc).timestamp())
    return ObjectId(struct.pack(">I", seconds) + rng.randbytes(5) + struct.pack(">I", counter)[1:])


def _ms(value: dt.datetime) -> dt.datetime:
    """Truncate to milliseconds, as BSON dates hold no more."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def demo_select_options(rng: random.Random) -> list[dict[str, Any]]:
    base = dt.datetime(2019, 3, 1, 9, 0, 0)
    groups = [("category", _CATEGORIES), ("status", _STATUSES), ("condition", _CONDITIONS),
              ("building", _BUILDINGS), ("department", _DEPARTMENTS), ("maintenance_type", _MAINTENANCE),
              ("unit", _UNITS)]
    docs: list[dict[str, Any]] = []
    for field, values in groups:
        for order, (value, label) in enumerate(values, start=1):
            docs.append({
                "_id": _oid(rng, base + dt.timedelta(minutes=len(docs)), len(docs)),
                "field": field,
                "value": value,
                "label": label,
                "order": order,
                # A few retired choices stay for old records, as real apps keep them.
                "active": not (field == "status" and value == "lost") and not (field == "unit" and value == "pair"),
            })
    return docs


def demo_equipment(rng: random.Random, count: int = 150) -> list[dict[str, Any]]:
    from bson import Decimal128, Int64

    docs: list[dict[str, Any]] = []
    start = dt.datetime(2015, 1, 1)
    for i in range(1, count + 1):
        cat = rng.choice(_CATEGORIES)[0]
        maker, series = rng.choice(_MAKERS[cat])
        model = f"{series} {rng.randint(100, 999)}{rng.choice(['', 'X', 'i', ' Pro'])}"
        purchased = _ms(start + dt.timedelta(seconds=rng.randint(0, 10 * 365 * 86400),
                                             microseconds=rng.randint(0, 999_999)))
        status = rng.choices([s for s, _ in _STATUSES], weights=[70, 8, 10, 5, 6, 1])[0]
        building, _ = rng.choice(_BUILDINGS)
        doc: dict[str, Any] = {
            "_id": _oid(rng, purchased, i),
            "asset_id": f"EQ-{i:05d}",
            "name": f"{maker} {rng.choice(_NOUNS[cat])}",
            "category": cat,
            "status": status,
            "manufacturer": maker,
            "model": model,
            "serial": f"SN-{rng.getrandbits(40):010X}",
            "purchase_date": purchased,
            "price": Decimal128(Decimal(rng.randint(1_500, 8_500_000)).scaleb(-2)),
            "weight_kg": round(rng.uniform(0.05, 420.0), 3),
            "quantity": rng.choice([1, 1, 1, 1, 2, 3, 5, 10, 24]),
            # Operating counter in milliseconds: beyond int32, always Int64.
            "usage_ms": Int64(rng.randint(2**33, 2**45)),
            "calibration_required": cat in ("balance", "pipette", "spectrometer", "microscope"),
            "tags": rng.sample(_TAGS, rng.choice([0, 1, 1, 2, 2, 3, 4])),
            "location": {
                "building": building,
                "room": f"{building}{rng.randint(0, 4)}.{rng.randint(1, 40):02d}",
                "coordinates": [round(48.70 + rng.uniform(0, 0.05), 6), round(2.10 + rng.uniform(0, 0.08), 6)],
            },
            "assigned_to": rng.choice(_PEOPLE),  # None = unassigned, kept as null
            "department": rng.choice(_DEPARTMENTS)[0],
        }
        doc["maintenance"] = _maintenance(rng, purchased)
        if rng.random() < 0.7:  # optional: absent on about 30 % of documents
            doc["warranty_until"] = _ms(purchased + dt.timedelta(days=365 * rng.choice([1, 2, 3, 5])))
        roll = rng.random()
        if roll < 0.35:
            doc["notes"] = rng.choice(_NOTES)
        elif roll < 0.45:
            doc["notes"] = None
        docs.append(doc)
    _add_edge_cases(docs)
    return docs


def _maintenance(rng: random.Random, purchased: dt.datetime) -> list[dict[str, Any]]:
    """An item's maintenance history: none to three visits after its purchase, some with a cost."""
    from bson import Decimal128

    maintenance = []
    when = purchased
    for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
        when = _ms(when + dt.timedelta(days=rng.randint(30, 400), seconds=rng.randint(0, 86399),
                                       milliseconds=rng.randint(0, 999)))
        entry: dict[str, Any] = {
            "date": when,
            "type": rng.choice(_MAINTENANCE)[0],
            "technician": rng.choice(_PEOPLE[:-1]),
            "notes": rng.choice(_MAINT_NOTES),
        }
        if rng.random() < 0.4:
            entry["cost"] = Decimal128(Decimal(rng.randint(0, 250_000)).scaleb(-2))
        maintenance.append(entry)
    return maintenance


def _add_edge_cases(docs: list[dict[str, Any]]) -> None:
    # Hand-picked edge cases a backup format has to survive.
    docs[6]["notes"] = 'Returned by "Lab 2", cable missing,\nsee ticket #88; owner said: "fine, use it"'
    docs[13]["notes"] = "=SUM(A1:A9) was typed into the inventory sheet by mistake"
    docs[20]["notes"] = "+33 1 23 45 67 89 (supplier hotline)"
    docs[27]["serial"] = ""  # unknown serial: empty string, not null, not missing
    docs[34]["tags"] = []
    docs[41]["name"] = "Spectromètre à réseau — 分光器 🔬"
    # Documents imported from an older app version carry another field order.
    for doc in docs[-3:]:
        doc["status"] = doc.pop("status")
        doc["category"] = doc.pop("category")


def seed_demo(db: Any) -> dict[str, int]:
    """Write the demo data into ``db`` (a ``pymongo.database.Database``).

    Deterministic: the same call always writes the same documents, ids
    included. Collections are expected to be empty (the unique index on
    ``asset_id`` rejects a second copy). One ``insert_many`` per collection,
    because the embedded server's insert cost grows quadratically with the
    batch count.
    """
    import pymongo

    rng = random.Random(20240601)
    options = demo_select_options(rng)
    equipment = demo_equipment(rng)
    db[EQUIPMENT].create_index([("asset_id", pymongo.ASCENDING)], unique=True, name="asset_id_unique")
    db[SELECT_OPTIONS].create_index([("field", pymongo.ASCENDING), ("value", pymongo.ASCENDING)],
                                    unique=True, name="field_value_unique")
    db[EQUIPMENT].insert_many(equipment, ordered=True)
    db[SELECT_OPTIONS].insert_many(options, ordered=True)
    return {EQUIPMENT: len(equipment), SELECT_OPTIONS: len(options)}
