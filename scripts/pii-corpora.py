#!/usr/bin/env python3
"""Writes the guard's external evaluation corpora: labelled JSONL that the
guard's own code did not make, for `outpost guard bench --corpus FILE`.

Every line is {"text", "spans": [{"type", "start", "end"}], "region"?}, with
character offsets and Presidio's type names; "region" is the country whose
national phone formats the text uses.

  presidio-faker.jsonl   presidio-evaluator 0.3.2's sentence templates (MIT,
                         models/eval/presidio-templates.txt) filled by Faker
                         40.54.0 (MIT) in 12 locales, as presidio-evaluator's
                         own generator fills them. A Faker phone number is a
                         label only when python-phonenumbers 9.0.43 (the
                         reference libphonenumber port, Apache-2.0) calls it a
                         possible number of the locale's region; the share it
                         rejects is printed. IBANs are checked by python-stdnum.
  libphonenumber-examples.jsonl
                         libphonenumber's example number for every region and
                         number type (from python-phonenumbers' metadata),
                         written E.164, international and national.
  card-test-numbers.jsonl
                         test card numbers that payment processors publish for
                         their sandboxes, each scheme's, plain and grouped.
  national-ids.jsonl     national IDs in the templates' own SSN sentences:
                         Faker's values (es NIF/NIE, it codice fiscale, fr NIR,
                         pl PESEL, in Aadhaar, br CPF) and random numbers for gb NHS and
                         de Steuer-ID, each kept only when python-stdnum 2.2
                         (LGPL) says it is valid.

Usage: pii-corpora.py OUT_DIR [--templates FILE]
"""
import json
import random
import re
import sys
from pathlib import Path

import phonenumbers as pn
from faker import Faker
from stdnum import iban as std_iban
from stdnum import luhn
from stdnum.br import cpf
from stdnum.de import idnr
from stdnum.es import nie, nif
from stdnum.fr import nir
from stdnum.gb import nhs
from stdnum.in_ import aadhaar
from stdnum.it import codicefiscale
from stdnum.pl import pesel
from stdnum.us import ssn as us_ssn

LOCALES = {
    "en_US": "US", "en_GB": "GB", "de_DE": "DE", "fr_FR": "FR", "es_ES": "ES",
    "it_IT": "IT", "nl_NL": "NL", "es_AR": "AR", "en_AU": "AU", "en_IN": "IN",
    "pt_BR": "BR", "pl_PL": "PL",
}


def possible_phone(value, region):
    try:
        return pn.is_possible_number(pn.parse(value, region))
    except pn.NumberParseException:
        return False


class Filler:
    """Fills one template's placeholders from a Faker locale, recording the
    spans of the labelled ones."""

    def __init__(self, fake, region, stats):
        self.fake, self.region, self.stats = fake, region, stats

    def phone(self):
        for _ in range(20):
            v = self.fake.phone_number()
            self.stats["phones"] += 1
            if possible_phone(v, self.region):
                return v
            self.stats["phones_rejected"] += 1
        return None

    def value(self, name):
        f = self.fake
        if name == "phone_number":
            v = self.phone()
            return (v, "PHONE_NUMBER") if v else (f.word(), None)
        if name == "credit_card_number":
            return f.credit_card_number(), "CREDIT_CARD"
        if name == "iban":
            for _ in range(20):
                v = f.iban()
                if std_iban.is_valid(v):
                    return v, "IBAN_CODE"
            return f.word(), None
        if name == "email":
            return f.email(), "EMAIL_ADDRESS"
        if name == "ip_address":
            return f.ipv4(), "IP_ADDRESS"
        if name == "date_of_birth":
            return str(f.date_of_birth()), "DATE_OF_BIRTH"
        if name == "ssn":
            # Faker's ssn is the locale's national ID; label it with the
            # type python-stdnum validates it as (none: left unlabelled).
            v = f.ssn()
            for check, label in SSN_CHECKS:
                if check(v):
                    return v, label
            return v, None
        if name == "person":
            return f.name(), None
        if name in ("nationality", "nation_woman", "nation_plural"):
            return f.country(), None
        if name == "us_driver_license":
            return f.bothify("?#######").upper(), None
        if name == "age":
            return str(f.random_int(18, 90)), None
        if name == "date_time":
            return str(f.date_time()), None
        gen = getattr(f, name, None)
        if callable(gen):
            try:
                return str(gen()), None
            except (AttributeError, TypeError, ValueError):
                pass
        return f.word(), None


SSN_CHECKS = [
    (us_ssn.is_valid, "US_SSN"), (codicefiscale.is_valid, "IT_FISCAL_CODE"),
    (nir.is_valid, "FR_NIR"), (pesel.is_valid, "PL_PESEL"), (nif.is_valid, "ES_NIF"),
    (nie.is_valid, "ES_NIE"), (aadhaar.is_valid, "IN_AADHAAR"), (nhs.is_valid, "UK_NHS"),
    (idnr.is_valid, "DE_TAX_ID"), (cpf.is_valid, "BR_CPF"),
]

PLACEHOLDER = re.compile(r"\{\{([a-z_0-9]+)\}\}")


def fill(template, value_of):
    """The text and labelled spans of one template."""
    template = template.replace("\\n", "\n").replace("\\,", ",")
    text, spans, at = "", [], 0
    for m in PLACEHOLDER.finditer(template):
        text += template[at:m.start()]
        value, label = value_of(m.group(1))
        if label:
            spans.append({"type": label, "start": len(text), "end": len(text) + len(value)})
        text += value
        at = m.end()
    text += template[at:]
    return text, spans


def presidio_faker(templates, out):
    stats = {"phones": 0, "phones_rejected": 0}
    n = 0
    with open(out, "w") as fh:
        for i, (loc, region) in enumerate(LOCALES.items()):
            fake = Faker(loc)
            fake.seed_instance(1000 + i)
            filler = Filler(fake, region, stats)
            for rep in range(2):
                for t in templates:
                    text, spans = fill(t, filler.value)
                    fh.write(json.dumps({"text": text, "spans": spans, "region": region,
                                         "locale": loc}, ensure_ascii=False) + "\n")
                    n += 1
    print(f"pii-corpora: {out}: {n} texts; Faker phone numbers not possible in their "
          f"locale's region (by python-phonenumbers), drawn again: "
          f"{stats['phones_rejected']} of {stats['phones']}")


PHONE_TYPES = [
    pn.PhoneNumberType.FIXED_LINE, pn.PhoneNumberType.MOBILE, pn.PhoneNumberType.TOLL_FREE,
    pn.PhoneNumberType.PREMIUM_RATE, pn.PhoneNumberType.SHARED_COST, pn.PhoneNumberType.VOIP,
    pn.PhoneNumberType.PERSONAL_NUMBER, pn.PhoneNumberType.PAGER, pn.PhoneNumberType.UAN,
    pn.PhoneNumberType.VOICEMAIL,
]


def phone_examples(out):
    n = 0
    with open(out, "w") as fh:
        def write(number, region, fmt):
            nonlocal n
            text = pn.format_number(number, fmt)
            fh.write(json.dumps({"text": text, "region": region,
                                 "spans": [{"type": "PHONE_NUMBER", "start": 0, "end": len(text)}]},
                                ensure_ascii=False) + "\n")
            n += 1
        for region in sorted(pn.SUPPORTED_REGIONS):
            for t in PHONE_TYPES:
                ex = pn.example_number_for_type(region, t)
                if ex is None:
                    continue
                for fmt in (pn.PhoneNumberFormat.E164, pn.PhoneNumberFormat.INTERNATIONAL,
                            pn.PhoneNumberFormat.NATIONAL):
                    write(ex, region, fmt)
        for cc in sorted(pn.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
            ex = pn.example_number_for_non_geo_entity(cc)
            if ex is not None:
                for fmt in (pn.PhoneNumberFormat.E164, pn.PhoneNumberFormat.INTERNATIONAL):
                    write(ex, "US", fmt)
    print(f"pii-corpora: {out}: {n} example numbers")


# Published sandbox test cards: (scheme, number, where it is published).
TEST_CARDS = [
    ("Visa", "4242424242424242", "Stripe"),
    ("Visa debit", "4000056655665556", "Stripe"),
    ("Mastercard", "5555555555554444", "Stripe"),
    ("Mastercard 2-series", "2223003122003222", "Stripe"),
    ("Mastercard debit", "5200828282828210", "Stripe"),
    ("Mastercard prepaid", "5105105105105100", "Stripe"),
    ("American Express", "378282246310005", "Stripe"),
    ("American Express", "371449635398431", "Stripe"),
    ("Discover", "6011111111111117", "Stripe"),
    ("Discover", "6011000990139424", "Stripe"),
    ("Diners Club", "3056930009020004", "Stripe"),
    ("Diners Club 14-digit", "36227206271667", "Stripe"),
    ("JCB", "3566002020360505", "Stripe"),
    ("UnionPay", "6200000000000005", "Stripe"),
    ("UnionPay 19-digit", "6205500000000000004", "Stripe"),
    ("Visa", "4111111111111111", "Braintree"),
    ("Visa", "4005519200000004", "Braintree"),
    ("Visa", "4009348888881881", "Braintree"),
    ("Visa", "4012000033330026", "Braintree"),
    ("Visa", "4012000077777777", "Braintree"),
    ("Visa", "4012888888881881", "Braintree"),
    ("Visa", "4217651111111119", "Braintree"),
    ("Visa", "4500600000000061", "Braintree"),
    ("Mastercard 2-series", "2223000048400011", "Braintree"),
    ("American Express", "378734493671000", "Braintree"),
    ("Discover", "6011000991300009", "Braintree"),
    ("JCB", "3530111333300000", "Braintree"),
    ("Maestro", "6304000000000000", "Braintree"),
    ("Visa", "4111111145551142", "Adyen"),
    ("Visa", "4988438843884305", "Adyen"),
    ("Mastercard 2-series", "2222400070000005", "Adyen"),
    ("Mastercard", "5555341244441115", "Adyen"),
    ("American Express", "370000000000002", "Adyen"),
    ("Diners Club", "36006666333344", "Adyen"),
    ("JCB", "3569990010095841", "Adyen"),
    ("UnionPay", "6243030000000001", "Adyen"),
    ("Discover", "6011601160116611", "Adyen"),
    ("Maestro", "6771798021000008", "Adyen"),
    ("Maestro", "6759649826438453", "Worldpay"),
    ("Visa", "4444333322221111", "Worldpay"),
]


def groups(d):
    """The ways a card number is written: plain, in fours (Amex 4-6-5) with
    spaces and with dashes."""
    if len(d) == 15:
        parts = [d[:4], d[4:10], d[10:]]
    elif len(d) == 14:
        parts = [d[:4], d[4:10], d[10:]]
    else:
        parts = [d[i:i + 4] for i in range(0, len(d), 4)]
    return [d, " ".join(parts), "-".join(parts)]


def card_numbers(out):
    n = 0
    with open(out, "w") as fh:
        for scheme, number, source in TEST_CARDS:
            if not luhn.is_valid(number):
                sys.exit(f"pii-corpora: test card {number} ({scheme}, {source}) fails Luhn: a typo in this list")
            for text in groups(number):
                fh.write(json.dumps({"text": text, "scheme": scheme, "source": source,
                                     "spans": [{"type": "CREDIT_CARD", "start": 0, "end": len(text)}]}) + "\n")
                n += 1
    print(f"pii-corpora: {out}: {n} test card numbers")


def national_ids(templates, out):
    ssn_templates = [t for t in templates if "{{ssn}}" in t]
    rng = random.Random(7)

    def faker_ids(loc, method, check, label, count=60):
        fake = Faker(loc)
        fake.seed_instance(7)
        got = []
        for _ in range(count * 5):
            v = str(getattr(fake, method)())
            if check(v):
                got.append((v, label))
            if len(got) == count:
                break
        return got

    def random_ids(make, check, label, count=60):
        got = []
        while len(got) < count:
            v = make()
            if check(v):
                got.append((v, label))
        return got

    values = (
        faker_ids("es_ES", "nif", nif.is_valid, "ES_NIF")
        + faker_ids("es_ES", "nie", nie.is_valid, "ES_NIE")
        + faker_ids("it_IT", "ssn", codicefiscale.is_valid, "IT_FISCAL_CODE")
        + faker_ids("fr_FR", "ssn", nir.is_valid, "FR_NIR")
        + faker_ids("pl_PL", "pesel", pesel.is_valid, "PL_PESEL")
        + faker_ids("en_IN", "aadhaar_id", aadhaar.is_valid, "IN_AADHAAR")
        + faker_ids("pt_BR", "cpf", cpf.is_valid, "BR_CPF")
        + random_ids(lambda: "".join(rng.choice("0123456789") for _ in range(10)), nhs.is_valid, "UK_NHS")
        + random_ids(lambda: str(rng.randint(10**10, 10**11 - 1)), idnr.is_valid, "DE_TAX_ID")
    )
    n = 0
    with open(out, "w") as fh:
        for i, (v, label) in enumerate(values):
            t = ssn_templates[i % len(ssn_templates)]
            text, spans = fill(t, lambda name: (v, label) if name == "ssn" else (name, None))
            fh.write(json.dumps({"text": text, "spans": spans}, ensure_ascii=False) + "\n")
            n += 1
    print(f"pii-corpora: {out}: {n} national IDs in the templates' SSN sentences")


def main():
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if args else 2)
    out = Path(args[0])
    tpl = Path(__file__).resolve().parent.parent / "models" / "eval" / "presidio-templates.txt"
    if "--templates" in args:
        tpl = Path(args[args.index("--templates") + 1])
    if not tpl.exists():
        sys.exit(f"pii-corpora: {tpl} is missing: run scripts/fetch-models.sh first")
    templates = [t for t in tpl.read_text(encoding="utf-8").splitlines() if t.strip()]
    out.mkdir(parents=True, exist_ok=True)
    presidio_faker(templates, out / "presidio-faker.jsonl")
    phone_examples(out / "libphonenumber-examples.jsonl")
    card_numbers(out / "card-test-numbers.jsonl")
    national_ids(templates, out / "national-ids.jsonl")


if __name__ == "__main__":
    main()
