from marshmallow import Schema, fields

from app.auth.models import Role
from app.schemas import Text


class UserSchema(Schema):
    id = fields.Integer()
    email = fields.Email()
    name = Text()
    role = fields.Enum(Role, by_value=True)
    environment_id = fields.Integer(allow_none=True)
    language = Text(allow_none=True)
