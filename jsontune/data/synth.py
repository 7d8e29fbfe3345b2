"""Synthetic Spanish purchase orders: text -> {"producto", "cantidad", "precio_unitario"}.

    jsontune data synth --n 2000 --out data/synth --seed 0

Each order draws a product (a catalogue of real items, or a code such as "A" or "B-12" as in the
original competition data), a quantity with its unit, a unit price in one of five currencies, and one
of ~50 phrasings (formal, neutral, form-like, chatty, WhatsApp), optionally wrapped as an e-mail with
greeting and signature or a chat message. Typos touch only the template's own words, never a label.

Guarantees the tests check: `producto` appears verbatim (any case) in the text and every number can
be read back with `jsontune.data.numbers.parse_number` ("1.500", "$1.250,50", "doscientas"...);
the quantity is the number written ("3 docenas" -> 3). A seed gives the same orders on every run.
"""

from __future__ import annotations

import math
import os
import random
import re
import string
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsontune.data.numbers import spanish_words, write_number
from jsontune.data.records import Record
from jsontune.errors import JsontuneError
from jsontune.io import write_jsonl_atomic


@dataclass(frozen=True)
class Unit:
    singular: str
    plural: str
    feminine: bool
    short: tuple[str, ...] = ()  # what hurried writers put instead: "kg", "lts", "cjs"


_UNITS = {
    u.plural: u
    for u in (
        Unit("unidad", "unidades", True, ("u.", "uds", "unid.")),
        Unit("caja", "cajas", True, ("cjs", "cj.")),
        Unit("bolsa", "bolsas", True),
        Unit("kilo", "kilos", False, ("kg", "kgs")),
        Unit("litro", "litros", False, ("lts", "l")),
        Unit("metro", "metros", False, ("mts", "m")),
        Unit("metro cúbico", "metros cúbicos", False, ("m3",)),
        Unit("metro cuadrado", "metros cuadrados", False, ("m2",)),
        Unit("docena", "docenas", True, ("doc.",)),
        Unit("paquete", "paquetes", False, ("paq.", "paqs")),
        Unit("rollo", "rollos", False),
        Unit("galón", "galones", False, ("gal",)),
        Unit("resma", "resmas", True),
        Unit("par", "pares", False),
        Unit("bidón", "bidones", False),
        Unit("saco", "sacos", False),
        Unit("frasco", "frascos", False),
        Unit("tubo", "tubos", False),
        Unit("cartucho", "cartuchos", False),
        Unit("balde", "baldes", False),
        Unit("barra", "barras", True),
        Unit("tramo", "tramos", False),
        Unit("juego", "juegos", False),
        Unit("pliego", "pliegos", False),
        Unit("bloc", "blocs", False),
        Unit("bobina", "bobinas", True),
        Unit("blíster", "blísteres", False),
        Unit("fardo", "fardos", False),
        Unit("botella", "botellas", True),
        Unit("pack", "packs", False),
        Unit("maple", "maples", False),
        Unit("sobre", "sobres", False),
        Unit("cono", "conos", False),
        Unit("carrete", "carretes", False),
        Unit("pieza", "piezas", True, ("pzas",)),
    )
}

# Product -> {unit plural: typical price in US dollars per that unit}; "" means counted directly
# ("500 tornillos hexagonales M8"). Prices only need to be plausible, not current.
_CATALOGUE: tuple[tuple[str, dict[str, float]], ...] = (
    ("tornillos hexagonales M8", {"": 0.15, "cajas": 12, "bolsas": 4.5}),
    ("tuercas M10", {"": 0.08, "bolsas": 3, "cajas": 8}),
    ("arandelas de presión M6", {"": 0.04, "bolsas": 2.5, "cajas": 6}),
    ("clavos de 2 pulgadas", {"kilos": 2.8, "cajas": 9, "bolsas": 3}),
    ("taladro percutor Bosch GSB 13 RE", {"unidades": 95}),
    ("amoladora angular de 4 1/2", {"unidades": 60}),
    ("cinta aislante 3M", {"rollos": 1.2, "cajas": 11, "unidades": 1.2}),
    ("silicona transparente", {"tubos": 3.5, "cartuchos": 4, "cajas": 40}),
    ("pintura látex blanca", {"litros": 4.5, "galones": 16, "baldes": 55}),
    ("cemento Portland", {"sacos": 9, "bolsas": 9, "kilos": 0.2}),
    ("arena fina", {"metros cúbicos": 25, "bolsas": 2}),
    ("varilla corrugada de 12 mm", {"unidades": 7, "barras": 7}),
    ("tubo de PVC de 110 mm", {"metros": 3.2, "tramos": 18, "unidades": 18}),
    ("codos de PVC", {"": 0.6, "bolsas": 10}),
    ("llave de paso de 3/4", {"unidades": 8.5}),
    ("brocas para concreto de 8 mm", {"": 2.5, "juegos": 15, "cajas": 20}),
    ("lija al agua grano 220", {"pliegos": 0.6, "paquetes": 5.5}),
    ("cerámica para piso 45x45", {"metros cuadrados": 11, "cajas": 22}),
    ("guantes de nitrilo", {"cajas": 9, "pares": 0.25, "paquetes": 4}),
    ("guantes de cuero", {"pares": 5.5, "docenas": 60}),
    ("cascos de seguridad", {"": 8, "unidades": 8, "cajas": 90}),
    ("mascarillas N95", {"": 0.9, "cajas": 17, "paquetes": 9}),
    ("botas de seguridad punta de acero", {"pares": 38}),
    ("chalecos reflectivos", {"": 4, "unidades": 4}),
    ("gafas de protección", {"": 3, "unidades": 3, "cajas": 30}),
    ("papel A4", {"resmas": 5, "cajas": 24}),
    ("bolígrafos azules", {"": 0.35, "cajas": 6, "docenas": 4}),
    ("carpetas archivadoras", {"": 3.2, "unidades": 3.2, "cajas": 30}),
    ("tóner HP 85A", {"unidades": 65, "cajas": 65}),
    ("grapas 26/6", {"cajas": 1.5, "paquetes": 1.5}),
    ("notas adhesivas Post-it", {"paquetes": 4, "blocs": 1.1}),
    ("marcadores para pizarra", {"": 1.1, "cajas": 10, "docenas": 12}),
    ("cuadernos universitarios", {"": 2.5, "docenas": 27, "paquetes": 12}),
    ("sillas de oficina ergonómicas", {"": 140, "unidades": 140}),
    ("cable UTP cat6", {"metros": 0.45, "rollos": 120, "bobinas": 120}),
    ("conectores RJ45", {"": 0.2, "bolsas": 15, "cajas": 18}),
    ("cable THHN calibre 12", {"metros": 0.6, "rollos": 55}),
    ("mouse inalámbrico Logitech M185", {"unidades": 15}),
    ("teclados USB", {"": 11, "unidades": 11}),
    ("monitores Dell de 24 pulgadas", {"": 160, "unidades": 160}),
    ("memorias USB de 32 GB", {"": 6, "unidades": 6, "cajas": 55}),
    ("disco SSD de 1 TB", {"unidades": 70}),
    ("switch de 24 puertos", {"unidades": 180}),
    ("focos LED de 9W", {"": 1.8, "cajas": 17, "unidades": 1.8}),
    ("tomacorrientes dobles", {"": 2.6, "unidades": 2.6, "cajas": 25}),
    ("pilas AA", {"": 0.6, "paquetes": 4.5, "blísteres": 2.4}),
    ("interruptor termomagnético de 20 A", {"unidades": 9}),
    ("canaleta plástica 20x10", {"metros": 0.9, "tramos": 1.8}),
    ("aceite de motor 10W-40", {"litros": 6.5, "galones": 24, "bidones": 28, "unidades": 6.5}),
    ("filtros de aceite", {"": 7, "unidades": 7, "cajas": 80}),
    ("líquido de frenos DOT 4", {"litros": 9, "frascos": 5, "unidades": 5}),
    ("neumáticos 205/55 R16", {"": 85, "unidades": 85}),
    ("refrigerante para radiador", {"litros": 3.5, "galones": 12, "bidones": 15}),
    ("baterías de 12V 75Ah", {"": 110, "unidades": 110}),
    ("cloro al 5%", {"litros": 0.9, "galones": 3.2, "bidones": 4.5}),
    ("detergente en polvo", {"kilos": 2.2, "bolsas": 7, "cajas": 20}),
    ("papel higiénico doble hoja", {"rollos": 0.5, "paquetes": 5, "fardos": 22}),
    ("alcohol en gel", {"litros": 4, "frascos": 2.5, "bidones": 18}),
    ("bolsas de basura negras", {"": 0.12, "paquetes": 2.5, "rollos": 2}),
    ("toallas de papel", {"rollos": 1.5, "paquetes": 8, "cajas": 25}),
    ("jabón líquido", {"litros": 2.5, "galones": 8, "bidones": 11}),
    ("trapeadores de microfibra", {"": 6, "unidades": 6}),
    ("harina de trigo 000", {"kilos": 0.9, "sacos": 19, "bolsas": 0.9}),
    ("azúcar blanca", {"kilos": 1.1, "sacos": 45, "bolsas": 1.1}),
    ("aceite de girasol", {"litros": 2.2, "bidones": 10, "botellas": 2.4, "cajas": 26}),
    ("arroz largo fino", {"kilos": 1.3, "sacos": 28, "bolsas": 1.3}),
    ("café molido", {"kilos": 12, "paquetes": 3.5, "bolsas": 6}),
    ("leche entera", {"litros": 1.1, "cajas": 12, "packs": 6}),
    ("huevos", {"": 0.2, "docenas": 2.6, "maples": 6.5}),
    ("agua mineral sin gas", {"botellas": 0.8, "bidones": 3.5, "packs": 4.5}),
    ("yerba mate", {"kilos": 5, "paquetes": 2.6}),
    ("jeringas de 5 ml", {"": 0.1, "cajas": 9, "unidades": 0.1}),
    ("gasas estériles", {"paquetes": 1.2, "cajas": 14, "sobres": 0.3}),
    ("paracetamol 500 mg", {"cajas": 2.5, "blísteres": 0.8, "frascos": 3}),
    ("termómetros digitales", {"": 6, "unidades": 6}),
    ("cajas de cartón corrugado", {"": 0.9, "fardos": 22, "paquetes": 9}),
    ("cinta de embalaje transparente", {"rollos": 1.4, "cajas": 50}),
    ("film stretch", {"rollos": 14, "kilos": 3}),
    ("pallets de madera", {"": 12, "unidades": 12}),
    ("tela de algodón", {"metros": 4.5, "rollos": 180}),
    ("hilo de poliéster", {"conos": 3, "carretes": 1.2, "cajas": 30}),
)
_CODE_MENTIONS = (
    "producto {}",
    "producto {}",
    "artículo {}",
    "item {}",
    "ítem {}",
    "referencia {}",
    "ref. {}",
    "código {}",
    "modelo {}",
    "SKU {}",
)
_CODE_UNITS = ("unidades", "unidades", "cajas", "paquetes", "piezas", "docenas")

# (name, USD -> local factors, rounding, formats). "$" alone means pesos here, as in most of Latin America.
_CURRENCIES = (
    ("pesos", (900.0, 950.0, 4000.0), "whole", ("${}", "$ {}", "{} pesos", "${}.-", "$ {} pesos")),
    ("dólares", (1.0,), "cents", ("USD {}", "{} USD", "US$ {}", "u$s {}", "{} dólares", "U$D {}")),
    ("euros", (0.92,), "cents", ("€{}", "{} €", "{} euros", "EUR {}")),
    ("pesos mexicanos", (17.5,), "halves", ("${} MXN", "MXN {}", "{} pesos mexicanos", "$ {} MXN")),
    ("soles", (3.75,), "cents", ("S/ {}", "S/. {}", "{} soles", "PEN {}")),
)
_CURRENCY_WEIGHTS = (30, 20, 15, 15, 15)

# Slots: {qp} quantity+unit+product, {prod} product, {cant} quantity+unit, {precio} price with its
# currency, {cada} per-unit phrase ("c/u", "por caja", "el kilo", or nothing).
_TEMPLATES: tuple[tuple[str, str], ...] = (
    ("formal", "Necesito comprar {qp}, precio {precio}."),
    ("formal", "Solicito {qp} a un precio unitario de {precio}."),
    ("formal", "Por medio de la presente solicitamos la compra de {qp} a {precio} {cada}."),
    ("formal", "Se requiere la adquisición de {qp}. Precio unitario acordado: {precio}."),
    ("formal", "Favor de enviar {qp} con un costo de {precio} {cada}."),
    ("formal", "Les confirmamos el pedido de {qp} al precio de {precio} {cada}."),
    ("formal", "Sírvanse despachar {qp} a {precio} {cada}, según lo conversado por teléfono."),
    ("formal", "Le escribo para encargar {qp}. El precio que nos informaron fue de {precio} {cada}."),
    ("formal", "Por favor facturar {qp} a {precio} {cada}."),
    ("formal", "Conforme a su cotización, aprobamos la compra de {qp} con precio unitario de {precio}."),
    ("formal", "Quisiéramos ordenar {qp}; entendemos que el valor es de {precio} {cada}."),
    ("formal", "Agradeceré nos confirmen la disponibilidad de {qp} a {precio} {cada}."),
    ("formal", "Adjuntamos la orden por {qp}, precio unitario {precio} (IVA incluido)."),
    ("neutral", "Orden de compra: {qp}, valor unitario {precio}."),
    ("neutral", "Pedido semanal: {qp} a {precio} {cada}."),
    ("neutral", "Para reposición de stock: {qp}, costo unitario {precio}."),
    ("neutral", "Agregar al pedido {qp} (PU {precio})."),
    ("neutral", "Confirmo la compra de {qp}. Precio por unidad: {precio}."),
    ("neutral", "A {precio} {cada}, necesitamos {qp}."),
    ("neutral", "El precio unitario es {precio} y necesitamos {qp}."),
    ("neutral", "De {prod} necesito {cant}, a {precio} {cada}."),
    ("neutral", "{prod}: {cant} a {precio} {cada}."),
    ("neutral", "Queremos {qp} al mismo precio de la última vez: {precio} {cada}."),
    ("neutral", "Compra de {prod}, cantidad {cant}, precio unitario {precio}."),
    ("neutral", "Necesitamos {qp} para el lunes; pagamos {precio} {cada}."),
    ("form", "Producto: {prod}\nCantidad: {cant}\nPrecio unitario: {precio}"),
    ("form", "- Artículo: {prod}\n- Cant.: {cant}\n- P. unit.: {precio}"),
    ("form", "{prod} | {cant} | {precio} {cada}"),
    ("form", "Item: {prod}; cantidad: {cant}; precio: {precio} {cada}"),
    ("form", "{prod} x {cant} @ {precio} {cada}"),
    ("form", "Cant. {cant} - {prod} - P.U. {precio}"),
    ("form", "Precio: {precio} {cada}. Cantidad: {cant}. Producto: {prod}."),
    ("form", "Descripción: {prod}\nUnidades solicitadas: {cant}\nValor unitario: {precio}"),
    ("chat", "Hola! Me mandás {qp}? Te pago {precio} {cada}."),
    ("chat", "Buenas, quería pedir {qp}, a {precio} {cada} como siempre."),
    ("chat", "Che, anotame {qp} a {precio} {cada} porfa."),
    ("chat", "Oye, ¿me puedes conseguir {qp}? Ofrezco {precio} {cada}."),
    ("chat", "Necesitamos urgente {qp}!! El precio que manejamos es {precio} {cada}."),
    ("chat", "Qué tal, para esta semana ocupo {qp}, a {precio} {cada} está bien."),
    ("chat", "Me quedo con {qp} a {precio} {cada}, ¿cuándo me lo pueden entregar?"),
    ("chat", "Dale, van {qp} a {precio} {cada}."),
    ("chat", "¿Hay stock de {prod}? Me llevo {cant} a {precio} {cada}."),
    ("chat", "Cotizame {qp}, que te lo pago {precio} {cada}."),
    ("chat", "Reservame {qp}, pago {precio} {cada}."),
    ("chat", "Mándame {qp} porfa, el precio quedamos en {precio} {cada}."),
    ("chat", "Oigan, ¿todavía tienen {prod} a {precio} {cada}? Necesito {cant}."),
    ("wa", "hola xfa m mandas {qp} a {precio} {cada} grax"),
    ("wa", "bnas tardes, nesesito {qp} a {precio} {cada}, m confirmas?"),
    ("wa", "{qp} a {precio} {cada} pa mañana xfa"),
    ("wa", "ola! tenes {prod}? necesito {cant}, a {precio} {cada} ok?"),
    ("wa", "porfa anotá {qp} {precio} {cada} tks"),
    ("wa", "q tal, me pasas {qp}? t pago {precio} {cada}"),
    ("wa", "urgente {qp}!! a {precio} {cada} xq se nos terminó"),
    ("wa", "sigue a {precio} {cada} {prod}? mandame {cant} pls"),
)
_TYPO_RATE = {"formal": 0.01, "neutral": 0.02, "form": 0.01, "chat": 0.04, "wa": 0.06}

_NAMES = (
    "Juan Martínez",
    "María López",
    "Carlos Gómez",
    "Ana Rodríguez",
    "Luis Fernández",
    "Lucía Díaz",
    "Jorge Ramírez",
    "Sofía Torres",
    "Diego Castro",
    "Valentina Rojas",
    "Pedro Silva",
    "Camila Vargas",
)
_COMPANIES = (
    "Distribuidora del Sur",
    "Ferretería Central",
    "Constructora Andina S.A.",
    "Comercial Norte SRL",
    "Insumos Médicos Lima",
    "Taller Mecánico Rivas",
    "Panadería La Espiga",
    "Hotel Costa Azul",
    "Colegio San Martín",
    "Clínica Santa Rosa",
    "Logística Pampa",
    "Imprenta Gráfica Sol",
)
_ROLES = (
    "Jefe de Compras",
    "Encargado de Depósito",
    "Administración",
    "Gerente de Operaciones",
    "Compras y Abastecimiento",
    "Mantenimiento",
)


@dataclass(frozen=True)
class _Item:
    label: str  # the "producto" value
    mention: str  # how the text names it: "guantes de nitrilo", "artículo B-12"
    unit: Unit | None  # None: counted directly ("500 tornillos hexagonales M8")
    usd: float  # typical price per unit, in US dollars
    feminine: bool  # gender of what is counted, for "doscientas cajas" / "doscientos litros"


@dataclass(frozen=True)
class SynthOrder:
    text: str
    target: dict[str, Any]
    template: int  # index into the phrasings, so variety can be measured


def split_sizes(n: int) -> dict[str, int]:
    """80/10/10 train/val/test sizes for `n` orders; val and test get at least one each."""
    if n < 3:
        raise JsontuneError(f"--n is {n}; it must be at least 3 so that train, val and test each get an order.")
    held_out = max(1, round(n * 0.1))
    return {"train": n - 2 * held_out, "val": held_out, "test": held_out}


def write_splits(n: int, out: str | os.PathLike, seed: int = 0) -> dict[str, Path]:
    """Write `n` orders as out/train.jsonl, val.jsonl, test.jsonl (80/10/10), each file atomically."""
    sizes = split_sizes(n)
    orders = generate_orders(n, seed)
    paths, start = {}, 0
    for name, size in sizes.items():
        paths[name] = Path(out) / f"{name}.jsonl"
        write_jsonl_atomic(paths[name], [r.to_dict() for r in orders[start : start + size]])
        start += size
    return paths


def generate_orders(n: int, seed: int = 0) -> list[Record]:
    """`n` distinct orders with ids synth-000001...; the same seed gives the same orders."""
    rng = random.Random(seed)
    records: list[Record] = []
    seen: set[str] = set()
    while len(records) < n:
        order = sample_order(rng)
        if order.text in seen:  # a repeat could land in both train and test
            continue
        seen.add(order.text)
        records.append(Record(id=f"synth-{len(records) + 1:06d}", text=order.text, target=order.target))
    return records


def sample_order(rng: random.Random) -> SynthOrder:
    """One order: product, quantity and price drawn, then written in a randomly chosen phrasing."""
    template = rng.randrange(len(_TEMPLATES))
    style, pattern = _TEMPLATES[template]
    item = _sample_item(rng)
    spanish = rng.random() < 0.6  # "1.250,50" (Spanish) rather than "1,250.50" (English) separators
    quantity = _sample_quantity(rng, item)
    cant, qp = _quantity_phrases(rng, item, quantity, spanish, style)
    price, precio = _sample_price(rng, item.usd * rng.uniform(0.8, 1.25), spanish)
    slots = {
        "qp": qp,
        "prod": _styled_mention(rng, item, style),
        "cant": cant,
        "precio": precio,
        "cada": _per_unit(rng, item, style),
    }
    text = _wrap(rng, style, _fill(rng, pattern, slots, _TYPO_RATE[style]))
    return SynthOrder(text, {"producto": item.label, "cantidad": quantity, "precio_unitario": price}, template)


def _sample_item(rng: random.Random) -> _Item:
    if rng.random() < 0.25:
        code = _product_code(rng)
        unit = _UNITS[rng.choice(_CODE_UNITS)]
        usd = math.exp(rng.uniform(math.log(0.5), math.log(300)))
        return _Item(code, rng.choice(_CODE_MENTIONS).format(code), unit, usd, unit.feminine)
    name, prices = rng.choice(_CATALOGUE)
    unit_name = rng.choice(list(prices))
    unit = _UNITS[unit_name] if unit_name else None
    # Counted directly, the gender is the product noun's: "mascarillas" and "tuercas" end in -as.
    feminine = unit.feminine if unit else name.split()[0].endswith("as")
    return _Item(name, name, unit, prices[unit_name], feminine)


def _product_code(rng: random.Random) -> str:
    letters = "ABCDEFGHIJKLMNPQRSTVWXZ"
    kind = rng.random()
    if kind < 0.5:
        return rng.choice(letters)
    if kind < 0.75:
        return f"{rng.choice(letters)}-{rng.randint(1, 99)}"
    if kind < 0.9:
        return f"{rng.choice(letters)}{rng.choice(letters)}-{rng.randint(100, 999)}"
    return f"{rng.choice(letters)}{rng.randint(1, 9)}"


def _sample_quantity(rng: random.Random, item: _Item) -> int:
    """Cheap things come by the thousand, expensive ones by the handful; people order round numbers."""
    weights = (5, 3, 1, 0) if item.usd > 50 else (1, 2, 3, 2) if item.usd < 1 else (3, 4, 2, 1)
    low, high = rng.choices(((1, 12), (12, 100), (100, 1000), (1000, 20000)), weights)[0]
    n = rng.randint(low, high)
    if n >= 100 and rng.random() < 0.8:
        step = rng.choice((10, 50, 100) if n < 1000 else (100, 500, 1000))
        n = max(step, round(n / step) * step)
    return max(n, 2) if item.unit is None else n  # "1 tornillos" is not Spanish


def _quantity_phrases(rng: random.Random, item: _Item, n: int, spanish: bool, style: str) -> tuple[str, str]:
    """({cant}, {qp}): "200 cajas" and "200 cajas de guantes de nitrilo" ("500" / "500 tuercas M10")."""
    wordy = (n <= 100 or n % 100 == 0) and rng.random() < (0.2 if style in ("chat", "wa") else 0.1)
    number = spanish_words(n, item.feminine) if wordy else _format_int(rng, n, spanish)
    if item.unit is None:
        return number, f"{number} {item.mention}"
    unit = item.unit
    hurried = not wordy and bool(unit.short) and rng.random() < (0.5 if style in ("wa", "form") else 0.15)
    word = unit.singular if n == 1 else rng.choice(unit.short) if hurried else unit.plural
    linker = "del" if item.mention.startswith(("producto ", "artículo ")) and rng.random() < 0.3 else "de"
    return f"{number} {word}", f"{number} {word} {linker} {item.mention}"


def _sample_price(rng: random.Random, usd: float, spanish: bool) -> tuple[int | float, str]:
    """(precio_unitario, how it is written): "$1.250", "USD 12.5", "45,90 soles", "cincuenta pesos"."""
    _, factors, rounding, formats = rng.choices(_CURRENCIES, _CURRENCY_WEIGHTS)[0]
    value = _round_price(rng, usd * rng.choice(factors), rounding)
    fmt = rng.choice(formats)
    sayable = isinstance(value, int) and 1 < value < 1_000_000 and (value <= 100 or value % 100 == 0)
    if sayable and fmt.startswith("{} ") and rng.random() < 0.1:
        return value, fmt.format(spanish_words(value))
    return value, fmt.format(_format_price(rng, value, spanish))


def _round_price(rng: random.Random, amount: float, rounding: str) -> int | float:
    if rounding == "whole" or amount >= 200:
        step = 1 if amount < 100 else 10 if amount < 5000 else 50 if amount < 50000 else 100
        value = max(step, round(amount / step) * step)
    elif amount < 1:
        value = round(max(amount, 0.05), 2)
    elif rounding == "halves":
        value = round(amount * 2) / 2
    else:  # shop prices: 12.00, 12.50, 12.99, 12.90, or any cents
        value = int(amount) + rng.choice((0, 0, 50, 99, 90, 25, 75, rng.randrange(1, 100))) / 100
    return int(value) if value == int(value) else round(value, 2)


def _format_int(rng: random.Random, n: int, spanish: bool) -> str:
    return write_number(n, spanish=spanish, grouped=n >= 1000 and rng.random() < 0.65)


def _format_price(rng: random.Random, value: int | float, spanish: bool) -> str:
    """Digits with 2 decimals at most, thousands grouped or not: forms that read back as `value`."""
    if isinstance(value, int) and not (value < 1000 and rng.random() < 0.1):
        return _format_int(rng, value, spanish)
    text = write_number(value, spanish=spanish, grouped=value >= 1000 and rng.random() < 0.65, cents=True)
    if text.endswith("0") and not text.endswith("00") and rng.random() < 0.5:
        text = text[:-1]  # "12.5", as in "USD 12.5"
    return text


def _styled_mention(rng: random.Random, item: _Item, style: str) -> str:
    return item.mention.upper() if style == "form" and rng.random() < 0.2 else item.mention


def _per_unit(rng: random.Random, item: _Item, style: str) -> str:
    if item.unit is None:
        options = ["c/u", "cada una" if item.feminine else "cada uno", "por unidad", "la unidad"]
    else:
        single, article = item.unit.singular, "la" if item.unit.feminine else "el"
        options = ["c/u", f"por {single}", f"{article} {single}", f"cada {single}"]
        options += [f"x {single}"] if style == "wa" else []
    return rng.choice([*options, ""])  # often the unit price is simply implied


def _fill(rng: random.Random, pattern: str, slots: dict[str, str], typo_rate: float) -> str:
    """The template with its slots filled; typos go only into the template's own words."""
    parts = []
    for literal, field, _, _ in string.Formatter().parse(pattern):
        parts.append(_typos(rng, literal, typo_rate))
        if field is not None:
            parts.append(slots[field])
    text = re.sub(r" {2,}", " ", "".join(parts)).replace("..", ".")  # "26 u.." from "u." + "."
    return re.sub(r" +([,.;?!)])", r"\1", text).strip()


def _typos(rng: random.Random, text: str, rate: float) -> str:
    def maybe(match: re.Match) -> str:
        word = match.group(0)
        return _misspell(rng, word) if len(word) >= 4 and rng.random() < rate else word

    return re.sub(r"[^\W\d_]+", maybe, text)


def _misspell(rng: random.Random, word: str) -> str:
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(4)
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]  # swapped letters
    if kind == 1:
        return word[:i] + word[i + 1 :]  # a letter dropped
    if kind == 2:
        return word[:i] + word[i] + word[i:]  # a letter doubled
    plain = "".join(c for c in unicodedata.normalize("NFD", word) if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", plain)  # accents left out


def _wrap(rng: random.Random, style: str, body: str) -> str:
    if style in ("formal", "neutral") and rng.random() < (0.5 if style == "formal" else 0.25):
        return _email(rng, body)
    if style in ("chat", "wa"):
        text = _chat(rng, style, body)
        if style == "wa" and rng.random() < 0.7:
            return text.lower().replace("¿", "").replace("¡", "")
        return text
    if style == "form" and rng.random() < 0.5:
        return _form_header(rng) + "\n" + body
    return body[0].upper() + body[1:]


def _email(rng: random.Random, body: str) -> str:
    name, company = rng.choice(_NAMES), rng.choice(_COMPANIES)
    greeting = rng.choice(
        (
            "Estimados:",
            "Buenos días,",
            "Buenas tardes,",
            "A quien corresponda:",
            f"Hola {rng.choice(_NAMES).split()[0]},",
            f"Sres. {rng.choice(_COMPANIES)}:",
        )
    )
    lines = [greeting, "", body[0].upper() + body[1:]]
    if rng.random() < 0.3:
        lines.insert(
            0,
            rng.choice(
                (
                    f"Asunto: Pedido OC-{rng.randint(1000, 9999)}",
                    f"Asunto: Orden de compra N° {rng.randint(100, 99999)}",
                    "Asunto: reposición de stock",
                )
            )
            + "\n",
        )
    if rng.random() < 0.3:
        lines.append(
            rng.choice(
                (
                    f"La entrega debe hacerse en nuestro depósito de calle {rng.randint(1, 120)} "
                    f"N° {rng.randint(10, 3000)}.",
                    "Forma de pago: transferencia a 30 días.",
                    f"Necesitamos la mercadería antes del {rng.randint(1, 28)}/{rng.randint(1, 12)}.",
                    "Por favor enviar la factura a compras@empresa.com.",
                )
            )
        )
    closing = rng.choice(
        (
            "Saludos cordiales,",
            "Atentamente,",
            "Quedo atento a su confirmación.\nSaludos,",
            "Gracias de antemano.",
            "Un saludo,",
        )
    )
    signature = rng.choice(
        (
            f"{name}\n{rng.choice(_ROLES)}\n{company}",
            name,
            f"{name} | {company} | Tel. {rng.randint(11, 99)} {rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
        )
    )
    return "\n".join([*lines, "", closing, signature])


def _chat(rng: random.Random, style: str, body: str) -> str:
    first = rng.choice(_NAMES).split()[0]
    greets = body.lower().startswith(("hola", "buenas", "bnas", "ola", "qué tal", "q tal", "oye", "oigan"))
    opener = "" if greets else rng.choice(("", "", "hola!", "buenas!", f"Hola {first}, cómo va?", "Buen día!"))
    closers = (
        ("👍", "🙏", "")
        if style == "wa"
        else ("gracias!", "saludos", "abrazo", "Gracias!!", "", "avisame cualquier cosa")
    )
    closer = rng.choice(closers)
    body = body[0].upper() + body[1:] if not opener else body
    return rng.choice((" ", "\n")).join(p for p in (opener, body, closer) if p)


def _form_header(rng: random.Random) -> str:
    return rng.choice(
        (
            f"ORDEN DE COMPRA N° {rng.randint(100, 99999)}",
            f"Pedido #{rng.randint(1000, 9999)}",
            f"Fecha: {rng.randint(1, 28)}/{rng.randint(1, 12)}/2024",
            f"Proveedor: {rng.choice(_COMPANIES)}",
        )
    )
