"""The purchase-order chat turns the offline tokenizer's BPE is trained on (deterministic, no download)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

from jsontune.data.numbers import write_number
from jsontune.prompts import build_messages, completion_text

_PRODUCTS = [
    "A",
    "B",
    "C",
    "Z",
    "X-200",
    "tornillos hexagonales",
    "cable UTP cat. 6",
    "papel bond tamaño carta",
    "tóner HP 85A",
    "guantes de nitrilo",
    "café molido",
    "sillas ergonómicas",
    "martillo de uña",
    "cinta adhesiva",
    "láminas galvanizadas",
    "jabón líquido",
    "brocas para concreto",
    "azúcar refinada",
    "cuadernos de 100 hojas",
    "focos LED",
    "pintura vinílica",
    "mangueras de ½ pulgada",
    "baterías AA",
    "válvulas de presión",
    "teclados inalámbricos",
    "aceite de oliva",
    "piñones de acero",
    "señalética",
]
_ORDER_TEMPLATES = [
    "Necesito comprar {q} unidades de producto {p}, precio {pr} pesos",
    "Pedido: {q} piezas de {p} a {pr} c/u.",
    "Favor de enviar {q} cajas de {p}; precio unitario {pr}.",
    "¿Me pueden cotizar {q} {p}? Nos ofrecieron {pr} por unidad.",
    "Solicito {q} paquetes de {p} con un precio de {pr} cada uno.",
    "Compra de {p}: cantidad {q}, precio unitario {pr} MXN.",
    "Queremos {q} unidades del artículo {p} (precio: {pr}).",
    "¡Urgente! Mandar {q} {p} al almacén, costo {pr} por pieza.",
    "Orden de compra n.º {n}: {p} × {q} a {pr} cada una.",
    "Hola, quisiera pedir {q} de {p}. El precio acordado es {pr}. Gracias.",
    "Buenos días: por favor surtir {q} rollos de {p}, precio por rollo {pr}.",
    "Requerimos {q} litros de {p} a {pr} el litro, según la última cotización.",
]
_EXTRAS = [
    "",
    "Entregar en {city} antes del {day}.",
    "Pago a 30 días, precio sin IVA.",
    "Factura a nombre de {co}.",
    "Enviar a la sucursal de {city}; contacto: compras@{dom}.com.",
    "Favor de confirmar disponibilidad.",
    "La entrega es el próximo {day} en el almacén central.",
    "Saludos cordiales, {co}.",
]
_CITIES = [
    "Monterrey",
    "Guadalajara",
    "Bogotá",
    "Medellín",
    "Lima",
    "Santiago",
    "Buenos Aires",
    "Madrid",
    "Quito",
    "Montevideo",
    "Ciudad de México",
    "Asunción",
    "San José",
    "Córdoba",
]
_DAYS = ["lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"]
_COMPANIES = [
    "Ferretería López",
    "Distribuidora del Norte S.A. de C.V.",
    "Papelería El Águila",
    "Comercializadora Pérez y Hijos",
    "Constructora Núñez",
    "Suministros Industriales Ibarra",
]


def _amount_text(rng: random.Random, value: float) -> str:
    """One of the ways Spanish-speaking buyers write a price: 1250, $1.250,50, 1,250.50, USD 12.99..."""
    return rng.choice(
        [
            write_number(value, spanish=False),
            "$" + write_number(value, grouped=True, cents=True),
            write_number(value, spanish=False, grouped=True, cents=True),
            "USD " + write_number(value, spanish=False, cents=True),
            write_number(value, spanish=False, cents=True) + " pesos",
            "$" + write_number(value, grouped=True),
        ]
    )


def _quantity_text(rng: random.Random, quantity: int) -> str:
    words = {12: "una docena", 100: "cien", 200: "doscientas", 500: "quinientas", 1000: "mil"}
    return rng.choice([str(quantity), write_number(quantity, grouped=True), words.get(quantity, str(quantity))])


def chat_corpus(n_orders: int = 400) -> Iterator[str]:
    """Deterministic chat turns (order prompts and JSON answers) to train the small BPE on.

    Each item is the text between two special tokens of the rendered Qwen3 chat, so the merges
    learnt are the ones the real prompts need ("user\n", "\n\n" after </think>, JSON keys).
    """
    rng = random.Random(0)
    for n in range(n_orders):
        product = rng.choice(_PRODUCTS)
        quantity = rng.choice([rng.randint(1, 99), rng.randint(100, 5000), rng.choice([12, 100, 200, 500, 1000])])
        price = rng.choice([rng.randint(1, 999), round(rng.uniform(0.5, 25000), 2)])
        text = rng.choice(_ORDER_TEMPLATES).format(
            q=_quantity_text(rng, quantity), p=product, pr=_amount_text(rng, price), n=n
        )
        extra = rng.choice(_EXTRAS).format(
            city=rng.choice(_CITIES), day=rng.choice(_DAYS), co=rng.choice(_COMPANIES), dom=f"empresa{n % 7}"
        )
        yield "user\n" + build_messages(f"{text} {extra}")[-1]["content"]
        yield "\nassistant\n"
        target = {"producto": product, "cantidad": quantity, "precio_unitario": price}
        yield "\n\n" + (completion_text(target) if n % 4 else json.dumps(target, ensure_ascii=False, indent=2))
