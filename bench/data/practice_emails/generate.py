"""Generate the labelled practice-email set (``emails.jsonl``) used by ``bench/scanner_eval.py``.

Deterministic (fixed seed): ``python bench/data/practice_emails/generate.py`` rewrites the
same file. Each template is a list of literal text and ``(CATEGORY, value)`` slots, so the
gold spans are exact offsets into the body. Every value is fictitious (invented names,
555-01xx phone numbers, example.org domains, SSNs in the never-issued 9xx range are *not*
used because the scanner rightly rejects them: SSNs here are made up but valid-shaped).

Message-level label ``phi``: true when the body ties health information (a condition, a
medication, a result, a procedure, or simply being a patient with an appointment) to an
identifiable person. Newsletters and marketing without a patient's identifiers are false,
even though they talk about health and carry the practice's own phone number and address.

The category names match ``phigate.phi_scanner.findings``.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from clinical_templates import CLINICAL_TEMPLATES

OUT = Path(__file__).with_name("emails.jsonl")
SEED = 20261128

FIRST = ["Maria", "James", "Aisha", "Wei", "Olga", "Carlos", "Grace", "Tomás", "Priya",
         "Dmitri", "Fatima", "Noah", "Hope", "Kwame", "Ingrid", "Luis", "May", "Hiroshi",
         "Chloe", "Rahul", "Beatriz", "Samuel", "Nadia", "Oluwaseun", "Elena", "Will",
         "Yusuf", "Hannah", "Mateo", "Siobhan", "Jun", "Amara", "Victor", "Rosa", "Ethan",
         "Leila", "Declan", "Mei", "Andrzej", "Zoe"]
LAST = ["Lopez", "Okafor", "Chen", "Nguyen", "Petrova", "Garcia", "Whitfield", "Haddad",
        "Sharma", "Kowalski", "Rahman", "Brennan", "Johansson", "Mensah", "Alvarez", "Tanaka",
        "O'Neill", "Fischer", "Abubakar", "Rossi", "Dubois", "Park", "Novak", "Hughes",
        "Castillo", "Yilmaz", "Moreau", "Silva", "Kaplan", "Becker"]
DOCTORS = ["Dr. Helen Ward", "Dr. Samir Patel", "Dr. Laura Kim", "Dr. Ben Foster",
           "Dr. Ana Ruiz", "Dr. Tom Ellison"]
CONDITIONS = ["type 2 diabetes", "hypertension", "asthma", "hypothyroidism",
              "atrial fibrillation", "migraine", "osteoarthritis", "major depressive disorder",
              "generalized anxiety disorder", "chronic kidney disease", "breast cancer",
              "psoriasis", "rheumatoid arthritis", "sleep apnea", "COPD", "gout",
              "celiac disease", "hepatitis C", "pneumonia", "bronchitis", "anemia",
              "high blood pressure", "prediabetes", "eczema", "glaucoma", "obesity",
              "iron deficiency anemia", "urinary tract infection", "HIV", "epilepsy"]
MEDICATIONS = ["metformin", "lisinopril", "atorvastatin", "levothyroxine", "amlodipine",
               "sertraline", "albuterol", "omeprazole", "losartan", "gabapentin",
               "hydrochlorothiazide", "insulin glargine", "warfarin", "prednisone",
               "escitalopram", "montelukast", "apixaban", "Ozempic", "Lipitor", "Synthroid"]
PROCEDURES = ["colonoscopy", "mammogram", "MRI of the knee", "echocardiogram", "biopsy",
              "cataract surgery", "physical therapy", "sleep study", "CT scan",
              "endoscopy", "knee replacement surgery", "stress test", "skin biopsy",
              "chemotherapy infusion", "ultrasound"]
LABS = [("A1c", "{:.1f}%", (6.0, 10.5)), ("LDL cholesterol", "{:.0f} mg/dL", (90, 210)),
        ("TSH", "{:.1f} mIU/L", (0.2, 9.0)), ("potassium", "{:.1f} mmol/L", (3.0, 5.9)),
        ("hemoglobin", "{:.1f} g/dL", (8.5, 16.0)), ("creatinine", "{:.1f} mg/dL", (0.6, 2.4)),
        ("vitamin D", "{:.0f} ng/mL", (9, 60)), ("glucose", "{:.0f} mg/dL", (70, 260))]
ICD = [("E11.9", "type 2 diabetes"), ("I10", "hypertension"), ("J45.909", "asthma"),
       ("E03.9", "hypothyroidism"), ("M17.11", "osteoarthritis of the right knee"),
       ("F32.9", "depression"), ("N18.3", "chronic kidney disease")]
CPT = ["99213", "99214", "93000", "80053", "36415", "45378", "77067"]
STREETS = ["Maple Avenue", "Oak Street", "Cedar Lane", "Harbor Road", "Elm Drive",
           "Birch Court", "Willow Way", "Pine Street", "Lakeview Boulevard", "Mill Road"]
CITIES = [("Springfield", "IL", "62704"), ("Portland", "OR", "97205"),
          ("Madison", "WI", "53703"), ("Austin", "TX", "78701"), ("Dayton", "OH", "45402"),
          ("Salem", "MA", "01970"), ("Boulder", "CO", "80302"), ("Tucson", "AZ", "85701")]
PRACTICES = ["Riverside Family Medicine", "Lakeside Pediatrics", "Northgate Cardiology",
             "Cedar Hill Dermatology", "Summit Orthopedics", "Harbor Women's Health"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]

Piece = str | tuple[str, str]


class Maker:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def pick(self, items: list[Any]) -> Any:
        return self.rng.choice(items)

    def name(self) -> str:
        return f"{self.pick(FIRST)} {self.pick(LAST)}"

    def phone(self) -> str:
        area = self.pick(["217", "503", "608", "512", "937", "978", "303", "520"])
        number = f"01{self.rng.randint(0, 99):02d}"
        return self.pick([f"({area}) 555-{number}", f"{area}-555-{number}",
                          f"{area}.555.{number}", f"+1 {area} 555 {number}"])

    def date(self, year_range: tuple[int, int] = (2025, 2026)) -> str:
        year = self.rng.randint(*year_range)
        month, day = self.rng.randint(1, 12), self.rng.randint(1, 28)
        return self.pick([f"{month}/{day}/{year}", f"{MONTHS[month - 1]} {day}, {year}",
                          f"{month:02d}/{day:02d}/{year}", f"{MONTHS[month - 1]} {day}"])

    def dob(self) -> str:
        return self.date((1932, 2015))

    def time(self) -> str:
        return f"{self.rng.randint(8, 16) % 12 or 12}:{self.pick(['00', '15', '30', '45'])} " \
               f"{self.pick(['AM', 'PM'])}"

    def mrn(self) -> str:
        return self.pick([f"{self.rng.randint(1000000, 9999999)}",
                          f"MR-{self.rng.randint(100000, 999999)}"])

    def member_id(self) -> str:
        return f"{self.pick(['XKH', 'BCX', 'UHC', 'AET'])}{self.rng.randint(100000000, 999999999)}"

    def account(self) -> str:
        return f"{self.rng.randint(10000000, 99999999)}"

    def ssn(self) -> str:
        return f"{self.rng.randint(100, 665)}-{self.rng.randint(10, 99)}-" \
               f"{self.rng.randint(1000, 9999)}"

    def address(self) -> str:
        return f"{self.rng.randint(12, 9800)} {self.pick(STREETS)}"

    def city(self) -> tuple[str, str, str]:
        city: tuple[str, str, str] = self.pick(CITIES)
        return city

    def lab(self) -> str:
        name, fmt, (low, high) = self.pick(LABS)
        return f"{name} was {fmt.format(self.rng.uniform(low, high))}"

    def email_of(self, name: str) -> str:
        first, last = name.lower().replace("'", "").split()[:2]
        return f"{first}.{last}@{self.pick(['example.org', 'example.net', 'mail.example.com'])}"


def practice_footer(m: Maker, practice: str) -> list[Piece]:
    city, state, zip_code = m.city()
    return ["\n\n--\n", practice, "\n", ("STREET_ADDRESS", m.address()), "\n",
            ("LOCATION", f"{city}, {state}"), " ", ("ZIP_CODE", zip_code), "\nPhone: ",
            ("PHONE_NUMBER", m.phone()), " | Fax: ", ("FAX_NUMBER", m.phone()), "\n"]


# --- templates: each returns (kind, class, phi, subject, pieces) --------------------------

def appointment_reminder(m: Maker) -> tuple[str, str, bool, str, list[Piece]]:
    name, doctor, practice = m.name(), m.pick(DOCTORS), m.pick(PRACTICES)
    greeting = m.pick(["Dear ", "Hi ", "Hello "])
    pieces: list[Piece] = [
        greeting, ("PERSON", name), ",\n\nThis is a reminder of your appointment with ",
        doctor.split(" ", 1)[0] + " ", ("PERSON", doctor.split(" ", 1)[1]), " on ",
        ("DATE", m.date()), " at ", m.time(), ".\n"]
    if m.rng.random() < 0.5:
        pieces += ["The visit is for your ", ("PROCEDURE", m.pick(PROCEDURES)),
                   ". Please arrive 15 minutes early.\n"]
    else:
        pieces += ["Please bring your insurance card and a list of your current medications.\n"]
    pieces += ["To reschedule, call us at ", ("PHONE_NUMBER", m.phone()), ".\n"]
    pieces += practice_footer(m, practice)
    return "appointment_reminder", "treatment", True, "Appointment reminder", pieces


def lab_results(m: Maker) -> tuple[str, str, bool, str, list[Piece]]:
    name, doctor = m.name(), m.pick(DOCTORS)
    pieces: list[Piece] = [
        "Dear ", ("PERSON", name), ",\n\nYour recent test results are available. Your ",
        ("LAB_RESULT", m.lab()), ", which is outside the normal range.\n"]
    if m.rng.random() < 0.6:
        pieces += [doctor.split(" ", 1)[0] + " ", ("PERSON", doctor.split(" ", 1)[1]),
                   " would like to adjust your ", ("MEDICATION", m.pick(MEDICATIONS)),
                   " and discuss your ", ("CONDITION", m.pick(CONDITIONS)), ".\n"]
    else:
        pieces += ["Please log in to the patient portal to review the full report.\n"]
    if m.rng.random() < 0.4:
        pieces += ["MRN: ", ("MEDICAL_RECORD_NUMBER", m.mrn()), "\n"]
    pieces += practice_footer(m, m.pick(PRACTICES))
    return "lab_results", "treatment", True, "Your test results", pieces


def referral_letter(m: Maker) -> tuple[str, str, bool, str, list[Piece]]:
    patient, doctor = m.name(), m.pick(DOCTORS)
    city, state, zip_code = m.city()
    code, condition = m.pick(ICD)
    pieces: list[Piece] = [
        "Dear Colleague,\n\nI am referring my patient ", ("PERSON", patient),
        " (DOB ", ("DATE", m.dob()), ", MRN ", ("MEDICAL_RECORD_NUMBER", m.mrn()),
        ") for evaluation of ", ("CONDITION", condition), " (ICD-10 ",
        ("MEDICAL_CODE", code), ").\n", "Current medications: ",
        ("MEDICATION", m.pick(MEDICATIONS)), " and ", ("MEDICATION", m.pick(MEDICATIONS)),
        ".\nRecent ", ("PROCEDURE", m.pick(PROCEDURES)), " on ", ("DATE", m.date()),
        " was unremarkable.\n\nPatient address: ", ("STREET_ADDRESS", m.address()), ", ",
        ("LOCATION", f"{city}, {state}"), " ", ("ZIP_CODE", zip_code),
        "\nPatient phone: ", ("PHONE_NUMBER", m.phone()),
        "\nInsurance member ID: ", ("HEALTH_PLAN_NUMBER", m.member_id()),
        "\n\nThank you,\n", ("PERSON", doctor.split(" ", 1)[1]), ", MD\n"]
    return "referral_letter", "treatment", True, "Referral", pieces


def billing_note(m: Maker) -> tuple[str, str, bool, str, list[Piece]]:
    name = m.name()
    pieces: list[Piece] = [
        "Hello ", ("PERSON", name), ",\n\nYour statement for the visit on ", ("DATE", m.date()),
        " is ready. Account number: ", ("ACCOUNT_NUMBER", m.account()), ".\n",
        "Services: office visit (CPT ", ("MEDICAL_CODE", m.pick(CPT)), ") and ",
        ("PROCEDURE", m.pick(PROCEDURES)), ".\nBalance due: $", str(m.rng.randint(20, 900)),
        ".00\n"]
    if m.rng.random() < 0.3:
        pieces += ["For our records we have SSN ", ("US_SSN", m.ssn()),
                   " on file; please confirm.\n"]
    pieces += ["Questions? Call billing at ", ("PHONE_NUMBER", m.phone()), ".\n"]
    return "billing_note", "operations", True, "Your statement", pieces


def refill_notice(m: Maker) -> tuple[str, str, bool, str, list[Piece]]:
    name = m.name()
    pieces: list[Piece] = [
        m.pick(["Hi ", "Dear "]), ("PERSON", name), ",\n\nYour prescription for ",
        ("MEDICATION", m.pick(MEDICATIONS)), " is ready for pickup. It was refilled on ",
        ("DATE", m.date()), ".\n", "We will send receipts to ", ("EMAIL_ADDRESS", m.email_of(name)),
        ". Please call the pharmacy at ", ("PHONE_NUMBER", m.phone()), " with questions.\n"]
    return "refill_notice", "treatment", True, "Prescription ready", pieces


def marketing_with_phi(m: Maker) -> tuple[str, str, bool, str, list[Piece]]:
    name, condition = m.name(), m.pick(CONDITIONS)
    pieces: list[Piece] = [
        m.pick(["Hi ", "Dear "]), ("PERSON", name), "!\n\n",
        m.pick(["Because you are managing ", "As someone living with ",
                "Since your diagnosis of "]), ("CONDITION", condition),
        ", we think you will love our new wellness program. Members save 20% on ",
        "nutrition coaching this month.\n\nSign up at https://wellness.example.org/join",
        " before ", m.pick(MONTHS), " 30.\n"]
    if m.rng.random() < 0.3:
        pieces += ["Your last ", ("PROCEDURE", m.pick(PROCEDURES)), " was on ",
                   ("DATE", m.date()), "; it may be time for a follow-up.\n"]
    pieces += practice_footer(m, m.pick(PRACTICES))
    return "marketing_with_phi", "marketing", True, "A program made for you", pieces


def newsletter(m: Maker) -> tuple[str, str, bool, str, list[Piece]]:
    doctor, practice = m.pick(DOCTORS), m.pick(PRACTICES)
    topic = m.pick(["Flu season is here", "Heart health month", "Healthy summer tips",
                    "Managing stress", "Back to school checklists", "Sun safety"])
    pieces: list[Piece] = [
        m.pick(["Dear Patients,", "Hello neighbors,", "Dear Friends,", "Hi everyone,"]),
        "\n\n", topic, "! ", m.pick([
            "Flu shots are available at all our locations; no appointment needed.",
            "Regular exercise and a balanced diet lower the risk of heart disease.",
            "Remember sunscreen with SPF 30 and plenty of water on hot days.",
            "Short walks and good sleep help with stress and anxiety.",
            "Schedule school physicals early; forms are on our website."]),
        "\n\nMeet our new provider: ", doctor.split(" ", 1)[0] + " ",
        ("PERSON", doctor.split(" ", 1)[1]), " joins us from ", m.city()[0],
        " and specializes in ", m.pick(["family medicine", "sports medicine",
                                        "internal medicine", "pediatrics"]), ".\n",
        "Free community talk on ", m.pick(["diabetes prevention", "healthy aging",
                                           "allergy season", "nutrition"]),
        " on ", ("DATE", f"{m.pick(MONTHS)} {m.rng.randint(1, 28)}"), " at 6 PM.\n",
        "Our office will be closed on ", ("DATE", m.pick(["July 4", "November 27",
                                                          "December 25", "May 26"])), ".\n"]
    pieces += practice_footer(m, practice)
    pieces += ["Unsubscribe: https://news.example.org/u/", str(m.rng.randint(10000, 99999)),
               "\n"]
    return "newsletter", "marketing", False, topic, pieces


def marketing_no_phi(m: Maker) -> tuple[str, str, bool, str, list[Piece]]:
    practice = m.pick(PRACTICES)
    pieces: list[Piece] = [
        "Hello from ", practice, "!\n\n", m.pick([
            "This spring, take 15% off teeth whitening and cosmetic consultations.",
            "Our new extended hours make it easier to see us after work.",
            "Refer a friend and both of you receive a $25 gift card.",
            "We now offer telehealth for quick questions about colds and allergies.",
            "Try our on-site physical therapy gym, open to the public on weekends."]),
        "\nBook online at https://", practice.split()[0].lower(), ".example.org or call ",
        ("PHONE_NUMBER", m.phone()), ".\n"]
    pieces += practice_footer(m, practice)
    return "marketing_no_phi", "marketing", False, "News from your practice", pieces


def operations_no_phi(m: Maker) -> tuple[str, str, bool, str, list[Piece]]:
    practice = m.pick(PRACTICES)
    pieces: list[Piece] = [
        m.pick(["Dear Patients,", "Hello,", "Good morning,"]), "\n\n", m.pick([
            "Our patient portal will be down for maintenance on ",
            "Parking lot resurfacing is scheduled for ",
            "Our phone system will be upgraded on "]),
        ("DATE", m.date()), m.pick([" from 10 PM to 2 AM.", ". Please use the side entrance.",
                                    ". Calls may drop briefly."]),
        "\nWe apologize for any inconvenience.\n"]
    pieces += practice_footer(m, practice)
    return "operations_no_phi", "operations", False, "Service notice", pieces


def identifiers_only(m: Maker) -> tuple[str, str, bool, str, list[Piece]]:
    name = m.name()
    pieces: list[Piece] = [
        "Hi ", ("PERSON", name), ",\n\n", m.pick([
            "Thanks for volunteering at our charity 5K run last weekend!",
            "Your password for the staff scheduling site was changed.",
            "Congratulations on completing the CPR instructor course.",
            "The book you lent to the front desk is ready to collect."]),
        " If this wasn't you, reply to ", ("EMAIL_ADDRESS", m.email_of(name)), ".\n"]
    return "identifiers_only", "operations", False, "Quick note", pieces


TEMPLATES = [  # (template, how many)
    (appointment_reminder, 40), (lab_results, 30), (referral_letter, 20), (billing_note, 20),
    (refill_notice, 20), (marketing_with_phi, 25), (newsletter, 25), (marketing_no_phi, 20),
    (operations_no_phi, 15), (identifiers_only, 15),
    *CLINICAL_TEMPLATES,  # issue 11's styles: clinical notes, "your results", traps
]


def render(pieces: list[Piece]) -> tuple[str, list[dict[str, Any]]]:
    text, spans = "", []
    for piece in pieces:
        if isinstance(piece, tuple):
            category, value = piece
            spans.append({"category": category, "start": len(text),
                          "end": len(text) + len(value), "text": value})
            text += value
        else:
            text += piece
    return text, spans


def build_eml(index: int, subject: str, body: str, message_class: str, html: bool) -> str:
    message = EmailMessage()
    message["From"] = "Practice <notify@practice.example.org>"
    message["To"] = f"recipient{index}@example.net"
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))
    message["Message-ID"] = f"<eval-{index}@practice.example.org>"
    message["X-Phigate-Class"] = message_class
    message.set_content(body)
    if html:
        paragraphs = "".join(f"<p>{line}</p>" for line in body.splitlines() if line)
        message.add_alternative(f"<html><head><style>p{{margin:0}}</style></head><body>"
                                f"{paragraphs}<script>track()</script></body></html>",
                                subtype="html")
    return message.as_string()


def main() -> None:
    rng = random.Random(SEED)
    maker = Maker(rng)
    records = []
    for template, count in TEMPLATES:
        for _ in range(count):
            kind, message_class, phi, subject, pieces = template(maker)
            body, spans = render(pieces)
            index = len(records)
            html = kind in ("newsletter", "marketing_no_phi", "marketing_with_phi") and (
                rng.random() < 0.5)
            records.append({"id": f"email-{index:03d}", "kind": kind, "class": message_class,
                            "phi": phi, "subject": subject, "body": body, "spans": spans,
                            "eml": build_eml(index, subject, body, message_class, html)})
    with OUT.open("w", encoding="utf-8") as stream:
        for record in records:
            stream.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"wrote {len(records)} emails to {OUT}")


if __name__ == "__main__":
    main()
