"""The FastAPI example of Hornbeam's guide (../shared/seeds/hornbeam-asgi-guide.txt,
"Running FastAPI"), as written there, plus the ``fetch_item`` it leaves to the reader."""

from fastapi import FastAPI

from hornbeam_erlang import state_get, state_incr, state_set

app = FastAPI()


async def fetch_item(item_id: int) -> dict:
    return {"id": item_id, "name": f"item {item_id}"}


@app.get("/")
async def root():
    views = state_incr('api_views')
    return {"views": views}


@app.get("/items/{item_id}")
async def get_item(item_id: int):
    # Check ETS cache first
    cached = state_get(f'item:{item_id}')
    if cached:
        return cached
    # Fetch and cache
    item = await fetch_item(item_id)
    state_set(f'item:{item_id}', item)
    return item


@app.post("/items/")
async def create_item(item: dict):
    item_id = state_incr('item_id_seq')
    item['id'] = item_id
    state_set(f'item:{item_id}', item)
    return item
