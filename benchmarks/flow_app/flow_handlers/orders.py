"""HTTP create -> event -> two subscribers -> a job that sends a mail to the outbox."""

from typing import Any


async def create(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
    [order] = await ctx.db.raw(
        "INSERT INTO orders (customer, email, total_cents) VALUES (%s, %s, %s)"
        " RETURNING id, customer, email, total_cents",
        input["customer"],
        input["email"],
        input["total_cents"],
    )
    ctx.event.emit("order.created", order)
    return order


async def audit(input: dict[str, Any], ctx: Any) -> None:
    await ctx.db.raw("INSERT INTO audit_log (order_id, what) VALUES (%s, 'created')", input["id"])


async def notify(input: dict[str, Any], ctx: Any) -> None:
    await ctx.queue.push("sendReceipt", {"order_id": input["id"], "email": input["email"]})


async def send_receipt(input: dict[str, Any], ctx: Any) -> None:
    await ctx.mail.send(
        input["email"],
        subject=f"Your order {input['order_id']}",
        text=f"Thank you for order {input['order_id']}.",
    )


async def hello(input: dict[str, Any], ctx: Any) -> dict[str, bool]:
    return {"ok": True}
