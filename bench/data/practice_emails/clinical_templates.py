"""Templates in the styles issue 11 names, for ``generate.py``: clinical notes in ALL CAPS and
in lower case, provider messages full of abbreviations, marketing with a procedure slipped
in, "your results" mail that names nobody, and PHI-free traps (newsletters full of general
health words, health education addressed to "you").

Written from general knowledge of how such mail reads, not from any evaluation corpus: the
names come from ``generate.py``'s invented lists, the places from a short list of US towns,
the dates are random.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from generate import Maker, Piece

Template = tuple[str, str, bool, str, list["Piece"]]

TOWNS = ["Elkridge", "Frederick", "Rockville", "Towson", "Hagerstown", "Annapolis", "Salisbury",
         "Catonsville", "Bethesda", "Gaithersburg"]
FACILITIES = ["St. Brendan's", "Mercy West Hospital", "Calloway Rehab", "Brookside Nursing Home",
              "Westbury Medical Center", "Holy Name Hospital"]
WARDS = ["Westbury 4", "Ashford 3", "Kellerman 6"]
CLINICAL = ["CHF", "NSTEMI", "COPD EXACERBATION", "PNA", "AFIB WITH RVR", "UROSEPSIS", "GI BLEED"]
PROCEDURES = ["CABG X3", "PTCA", "CARDIAC CATH", "EGD", "PICC PLACEMENT", "TEE"]
DRUGS = ["HEPARIN", "INSULIN", "VANCO", "LASIX", "LOPRESSOR", "COUMADIN"]
RELATIONS = ["DAUGHTER", "SON", "WIFE", "HUSBAND", "SISTER", "DTR"]
SLIPPED_PROCEDURES = ["gastric bypass", "knee replacement", "colonoscopy", "hip replacement",
                      "cataract surgery", "lumpectomy"]


def _md(m: Maker) -> str:
    return f"{m.rng.randint(1, 12)}/{m.rng.randint(1, 28)}"


def caps_note(m: Maker) -> Template:
    doctor, nurse = m.pick(LAST_NAMES(m)), m.name()
    relative = m.name().split()[0]
    pieces: list[Piece] = [
        "PT IS A ", str(m.rng.randint(45, 88)), " YO M ADMITTED ", ("DATE", _md(m)),
        " FROM ", ("LOCATION", m.pick(FACILITIES).upper()), " WITH ",
        ("CONDITION", m.pick(CLINICAL)), ". S/P ", ("PROCEDURE", m.pick(PROCEDURES)), " ",
        ("DATE", _md(m)), ". ", ("MEDICATION", m.pick(DRUGS)),
        " GTT AT 900 U/HR. BP 118/64, HR 72.\nSPOKE WITH DR ", ("PERSON", doctor.upper()),
        " RE PLAN. ", m.pick(RELATIONS), " ", ("PERSON", relative.upper()), " CALLED FROM ",
        ("LOCATION", m.pick(TOWNS).upper()), ", UPDATED.\nPLAN: TRANSFER TO ",
        ("LOCATION", m.pick(WARDS).upper()), " IN AM.\n", ("PERSON", nurse.upper()), ", RN\n"]
    return "caps_clinical_note", m.pick(["treatment", "marketing"]), True, "note", pieces


def LAST_NAMES(m: Maker) -> list[str]:
    return [m.name().split()[1] for _ in range(3)]


def lower_note(m: Maker) -> Template:
    doctor = m.name().split()[1].lower()
    relative = m.name().split()[0].lower()
    pieces: list[Piece] = [
        "npn 7a-7p: pt alert, a&ox3. s/p ", m.pick(["cabg", "ptca", "picc placement"]),
        " on ", ("DATE", _md(m)), ". r/o mi, trop pending. ",
        m.pick(["heparin", "insulin", "lasix"]), " gtt cont. dr. ", ("PERSON", doctor),
        " aware of k 3.2, repleted.\nsocial: ", m.pick(["daughter", "dtr", "son", "wife"]), " ",
        ("PERSON", relative), " in to visit, lives in ", ("LOCATION", m.pick(TOWNS).lower()),
        ". pager #", ("PHONE_NUMBER", str(m.rng.randint(10000, 99999))), "\n"]
    return "lower_clinical_note", "treatment", True, "npn", pieces


def abbreviation_message(m: Maker) -> Template:
    patient, doctor = m.name(), m.name()
    pieces: list[Piece] = [
        "Hi,\n\nPt ", ("PERSON", patient), " s/p ", m.pick(["CABG x3", "TKR", "PTCA"]),
        " ", ("DATE", _md(m)), ", r/o DVT. On heparin gtt, INR 1.4. Hx CHF, COPD, NIDDM. "
        "F/U ", ("DATE", _md(m)), " w/ Dr ", ("PERSON", doctor.split()[1]),
        ". Please call x", ("PHONE_NUMBER", str(m.rng.randint(1000, 9999))), " w/ questions.\n"]
    return "abbreviation_message", "treatment", True, "pt update", pieces


def marketing_slipped_procedure(m: Maker) -> Template:
    name = m.name()
    procedure = m.pick(SLIPPED_PROCEDURES)
    pieces: list[Piece] = [
        "Dear ", ("PERSON", name.split()[0]), ",\n\nSpring is here and our spa is offering 20% "
        "off massages and facials all month. Bring a friend and both save!\nWe hope your "
        "recovery from your ", ("PROCEDURE", procedure), " is going well; our gentle package "
        "is a good fit.\nBook online or call us.\n"]
    return "marketing_slipped_procedure", "marketing", True, "Spring offers", pieces


def your_results(m: Maker) -> Template:
    statement = m.pick([
        "Your biopsy results are ready. Please log in to the portal to read them.",
        "Your A1C was 9.1 at your last visit; the doctor would like to see you again.",
        "Your prescription for lisinopril is ready for pickup at the front desk.",
        "Your MRI report is available in the patient portal.",
        "Your cholesterol was high on the last test; please schedule a follow-up.",
        "Your lab results came back and the nurse will call you this week."])
    pieces: list[Piece] = ["Hello,\n\n", statement, "\n\nThank you,\nThe care team\n"]
    return "your_results_no_name", "treatment", True, "Message from your care team", pieces


def health_newsletter(m: Maker) -> Template:
    """A false-alarm trap: general health words, the practice's doctor, phone and dates."""
    doctor = m.name()
    pieces: list[Piece] = [
        "Dear Patients,\n\nNovember is Diabetes Awareness Month. Type 2 diabetes, high blood "
        "pressure and high cholesterol often come together; exercise, a diet rich in "
        "vegetables and regular screening lower the risk of heart disease and stroke.\n"
        "Flu shots, shingles and pneumonia vaccines are available; ask about insulin pens, "
        "metformin side effects or colonoscopy screening at your next visit.\n"
        "Dr. ", ("PERSON", doctor.split()[1]), " will give a free talk on asthma, allergies "
        "and COPD on ", ("DATE", f"November {m.rng.randint(1, 28)}"), " at 6 PM.\n"
        "Call ", ("PHONE_NUMBER", m.phone()), " to register.\n"]
    return "health_newsletter_trap", "marketing", False, "Health news", pieces


def you_education(m: Maker) -> Template:
    """Health education addressed to "you": not about the recipient's own health."""
    pieces: list[Piece] = [m.pick([
        "Get your flu shot this winter! Check your blood pressure regularly and know your "
        "A1C target if you live with diabetes.",
        "Protect your heart: walk 30 minutes a day, keep your cholesterol in check and ask "
        "your doctor about screening.",
        "Your health matters. Schedule your annual physical and your mammogram when due."]),
        "\nOur clinics are open weekdays 8-6. Call ", ("PHONE_NUMBER", m.phone()), ".\n"]
    return "you_education", "marketing", False, "Stay well", pieces


CLINICAL_TEMPLATES = [
    (caps_note, 12), (lower_note, 8), (abbreviation_message, 8),
    (marketing_slipped_procedure, 8), (your_results, 8), (health_newsletter, 15),
    (you_education, 6),
]
